import json

from django.core.management.base import BaseCommand, CommandError

from accounts.selectors import agency_get_by_slug, agency_policy
from accounts.services import POLICY_FIELDS, AccountError, agency_policy_set


def yes_no(value: str) -> bool:
    if value.lower() in ("yes", "true", "1", "on"):
        return True
    if value.lower() in ("no", "false", "0", "off"):
        return False
    raise ValueError(value)


class Command(BaseCommand):
    help = (
        "Set an agency's policy on searches (only the options given change): authorisation per case, the "
        "urgent-use window, certified searchers, watch-list limits. Without options, print the policy."
    )

    def add_arguments(self, parser):
        parser.add_argument("--agency", required=True, help="Slug of the agency")
        parser.add_argument("--authorisation-required", type=yes_no, metavar="yes|no")
        parser.add_argument("--urgent-window-hours", type=int, metavar="HOURS", help="Default 48")
        parser.add_argument("--certification-required", type=yes_no, metavar="yes|no")
        parser.add_argument("--watchlist-max-entries", type=int, metavar="N")
        parser.add_argument("--watchlist-max-days", type=int, metavar="DAYS", help="At most 365")
        parser.add_argument("--json", action="store_true", help="Print the policy as JSON")

    def handle(self, *args, agency, **options):
        agency_obj = agency_get_by_slug(agency)
        if agency_obj is None:
            raise CommandError(f"No agency with the slug {agency!r}.")
        changes = {name: options[name] for name in POLICY_FIELDS if options.get(name) is not None}
        if changes:
            try:
                policy = agency_policy_set(agency=agency_obj, actor=None, **changes)
            except AccountError as exc:
                raise CommandError(str(exc)) from None
        else:
            policy = agency_policy(agency_id=agency_obj.id)
        values = {"agency": agency_obj.slug} | {name: getattr(policy, name) for name in POLICY_FIELDS}
        if options["json"]:
            self.stdout.write(json.dumps(values))
            return
        for name, value in values.items():
            self.stdout.write(f"{name.replace('_', ' ')}: {value}")
