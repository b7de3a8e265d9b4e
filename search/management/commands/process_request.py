import json

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from search.models import SubjectRequest
from search.subject_requests import AccessOutcome, RequestRefused, subject_request_complete, subject_request_search


class Command(BaseCommand):
    help = (
        "Work a data-subject request as the privacy officer does in the portal: search its photo against "
        "every gallery, then (with --approve-all) release or erase every match."
    )

    def add_arguments(self, parser):
        parser.add_argument("reference")
        parser.add_argument("--user", required=True, help="Username of the privacy officer")
        parser.add_argument("--approve-all", action="store_true", help="Accept every match")
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
            outcome = subject_request_complete(
                request=request,
                user=officer,
                profile_ids=[m["profile_id"] for m in matches],
                identity_note=options["identity_note"],
            )
        except RequestRefused as exc:
            raise CommandError(str(exc)) from None
        if isinstance(outcome, AccessOutcome):
            self._print({"reference": reference, "matches": outcome.matches, "export": outcome.export_path}, options)
        else:
            self._print(
                {
                    "reference": reference,
                    "erased_profiles": outcome.erased_profiles,
                    "files_removed": outcome.files_removed,
                },
                options,
            )

    def _print(self, result: dict, options) -> None:
        self.stdout.write(json.dumps(result) if options["json"] else json.dumps(result, indent=2))
