import contextlib
import json
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.selectors import agency_get_by_slug
from portal.services import CaseError, case_get_or_create
from search import selectors
from search.imaging import PhotoRejected
from search.models import SearchJob
from search.services import SearchRefused, probe_submit, search_purpose_check
from search.workers import TemporaryWorker, worker_consuming_search_queue


class Command(BaseCommand):
    help = "Search a photo through the Celery pipeline and print the result as JSON."

    def add_arguments(self, parser):
        parser.add_argument("photo")
        parser.add_argument("--agency", required=True)
        parser.add_argument("--case", required=True, help="Case number (created if missing)")
        parser.add_argument("--user", required=True, help="Username of the searching officer")
        parser.add_argument("--top-k", type=int, default=None, help="Candidates per face (default 10)")
        parser.add_argument("--purpose", default="", help="Offense category (required), e.g. Robbery")
        parser.add_argument("--justification", default="", help="Why this search is needed (required, 20+ chars)")
        parser.add_argument(
            "--sensitive", action="store_true", help="A slower, more sensitive detector for small or distant faces"
        )
        parser.add_argument("--timeout", type=float, default=600, help="Seconds to wait for the result")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON (always on)")

    def handle(self, *args, photo, agency, case, user, **options):
        agency_obj = agency_get_by_slug(agency)
        if agency_obj is None:
            raise CommandError(f"No agency with the slug {agency!r}.")
        officer = User.objects.filter(username=user, agency=agency_obj, is_active=True).first()
        if officer is None:
            raise CommandError(f"No active user {user!r} in {agency_obj.name}.")
        path = Path(photo)
        if not path.is_file():
            raise CommandError(f"{photo} is not a file.")
        data = path.read_bytes()[: settings.UPLOAD_MAX_BYTES + 1]
        try:
            search_purpose_check(purpose=options["purpose"], justification=options["justification"])
        except SearchRefused as exc:
            self._print({"job": None, "status": "failed", "error": str(exc), "faces": []})
            raise SystemExit(1) from None
        try:
            case_obj = case_get_or_create(user=officer, number=case)
        except CaseError as exc:
            raise CommandError(str(exc)) from None

        worker = contextlib.nullcontext() if worker_consuming_search_queue() else TemporaryWorker()
        with worker:
            try:
                job = probe_submit(
                    case=case_obj,
                    uploaded_by=officer,
                    data=data,
                    original_name=path.name,
                    top_k=options["top_k"],
                    purpose=options["purpose"],
                    justification=options["justification"],
                    sensitive=options["sensitive"],
                )
            except (PhotoRejected, SearchRefused) as exc:
                self._print({"job": None, "status": "failed", "error": str(exc), "faces": []})
                raise SystemExit(1) from None
            job = self._wait(job.id, options["timeout"])
        self._print(selectors.search_job_result(job=job))
        if job.status != SearchJob.Status.DONE:
            raise SystemExit(1)

    def _wait(self, job_id: int, timeout: float) -> SearchJob:
        deadline = time.monotonic() + timeout
        while True:
            job = SearchJob.objects.select_related("probe").get(pk=job_id)
            if job.is_finished:
                return job
            if time.monotonic() > deadline:
                raise CommandError(f"Job {job_id} did not finish within {timeout:.0f} s (status {job.status}).")
            time.sleep(0.2)

    def _print(self, result: dict) -> None:
        self.stdout.write(json.dumps(result))
