import json

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import Agency
from portal.audit import audit_record
from portal.models import AuditEntry
from search.usage import OUTCOME_WORDS, UsageRefused, usage_report, usage_year_check

# Bad arguments exit with 2, as argparse's own errors do.
BAD_ARGUMENTS = 2


class Command(BaseCommand):
    help = "The yearly usage report of an agency (--agency SLUG) or of the whole platform (EU AI Act art. 26(10))."

    def add_arguments(self, parser):
        # A string, checked here: argparse's own refusal would exit with a less helpful message.
        parser.add_argument("--year", required=True, help="The calendar year, 2000–2100")
        parser.add_argument("--agency", help="The agency's slug; without it, every agency together")
        parser.add_argument("--json", action="store_true", help="Print the figures as JSON")

    def handle(self, *args, year, agency, **options):
        as_json = options["json"]
        try:
            year = usage_year_check(year)
        except UsageRefused as refused:
            raise CommandError(str(refused), returncode=BAD_ARGUMENTS) from None
        agency_row = None
        if agency is not None:
            agency_row = Agency.objects.filter(slug=agency).first()
            if agency_row is None:
                raise CommandError(f"No agency has the slug {agency!r}.", returncode=BAD_ARGUMENTS)
        with transaction.atomic():
            report = usage_report(year=year, agency_id=agency_row.id if agency_row else None)
            audit_record(
                action=AuditEntry.Action.USAGE_REPORT,
                username="manage.py usage_report",
                agency=agency_row,
                detail=f"Usage report {year} of {agency_row.slug if agency_row else 'the whole platform'}",
                data={"year": year, "agency": report["agency"], "format": "json" if as_json else "table"},
            )
        self.stdout.write(_as_json(report) if as_json else _as_table(report))


def _as_json(report: dict) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False)


def _as_table(report: dict) -> str:
    searches = report["searches"]
    lines = [
        f"Usage report {report['year']} — {report['agency'] or 'whole platform'}",
        "",
        f"Searches: {searches['total']}",
        "  by offense category:",
        *(f"    {name:<40} {count:>8}" for name, count in searches["by_offense"].items()),
        *(["    (none)"] if not searches["by_offense"] else []),
        "  by outcome:",
        *(f"    {OUTCOME_WORDS[key]:<40} {count:>8}" for key, count in searches["by_outcome"].items()),
        f"Watch-list alerts: {report['watchlist_alerts']}",
        "Authorisations: " + ", ".join(f"{count} {key}" for key, count in report["authorisations"].items()),
        f"Erasures: {report['erasures']}",
        f"Users with a current face-search certification: {report['certified_users']}",
    ]
    return "\n".join(lines)
