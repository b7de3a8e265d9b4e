import json

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from search.models import SubjectRequest
from search.subject_requests import (
    AccessOutcome,
    RequestRefused,
    match_decision_words,
    match_is_likely,
    subject_request_complete,
    subject_request_search,
)


class Command(BaseCommand):
    help = (
        "Work a data-subject request as the privacy officer does in the portal: search its photo against "
        "every gallery, then (with --approve-all) release or erase every likely match; the others are listed, "
        "never approved."
    )

    def add_arguments(self, parser):
        parser.add_argument("reference")
        parser.add_argument("--user", required=True, help="Username of the privacy officer")
        parser.add_argument("--approve-all", action="store_true", help="Accept every likely match")
        parser.add_argument("--identity-note", default="Identity verified by the privacy officer (command line)")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, reference, user, **options):
        request = SubjectRequest.objects.filter(reference=reference).first()
        if request is None:
            raise CommandError(f"No request {reference}.")
        officer = User.objects.filter(username=user, is_active=True).first()
        if officer is None:
            raise CommandError(f"No active user {user!r}.")
        try:
            matches = subject_request_search(request=request, user=officer)
            if not options["approve_all"]:
                self._print({"reference": reference, "matches": matches}, options)
                return
            # Only what the decision calls a likely match: a resemblance is never released or erased.
            outcome = subject_request_complete(
                request=request,
                user=officer,
                profile_ids=[m["profile_id"] for m in matches if match_is_likely(m)],
                identity_note=options["identity_note"],
            )
        except RequestRefused as exc:
            raise CommandError(str(exc)) from None
        not_approved = [m | {"decision_words": match_decision_words(m)} for m in matches if not match_is_likely(m)]
        if isinstance(outcome, AccessOutcome):
            result = {"reference": reference, "matches": outcome.matches, "export": outcome.export_path}
        else:
            result = {
                "reference": reference,
                "erased_profiles": outcome.erased_profiles,
                "files_removed": outcome.files_removed,
            }
        self._print(result | {"not_approved": not_approved}, options)
        for match in not_approved:
            self.stderr.write(
                f"Not approved: {match['profile']} ({match['gallery']}, {match['agency']}): {match['decision_words']}"
            )

    def _print(self, result: dict, options) -> None:
        self.stdout.write(json.dumps(result) if options["json"] else json.dumps(result, indent=2))
