"""Accountable search: a case, an offense category and a justification; every search is audited."""

import io
import json

from django.core.management import call_command
from django.test import TestCase, override_settings

from portal.models import AuditEntry
from search import pipeline
from search.enrolment import EnrolmentItem, gallery_enrol_batch, gallery_get_or_create
from search.models import SearchJob
from search.services import SearchRefused, probe_submit
from tests.base import GALLERY_PROVENANCE, AgencyFixtureMixin, faces_dir, image_bytes, photo_bytes

NO_DEFAULTS = override_settings(SEARCH_DEFAULT_PURPOSE="", SEARCH_DEFAULT_JUSTIFICATION="")
JUSTIFICATION = "CCTV still of the robbery suspect at the station"


@NO_DEFAULTS
class SearchPurposeTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        gallery, _ = gallery_get_or_create(
            owner=cls.north, name="North bookings", legal_basis="Test act", **GALLERY_PROVENANCE
        )
        gallery_enrol_batch(
            gallery=gallery,
            gallery_created=True,
            items=[EnrolmentItem(path=str(faces_dir() / "img1.jpg"), display_name="P01")],
        )

    def submit(self, **kwargs):
        with self.captureOnCommitCallbacks(execute=False):
            return probe_submit(case=self.case, uploaded_by=self.alice, data=photo_bytes("img2.jpg"), **kwargs)

    def test_a_search_without_a_purpose_is_refused(self):
        with self.assertRaisesMessage(SearchRefused, "State the purpose of the search"):
            self.submit(justification=JUSTIFICATION)
        with self.assertRaisesMessage(SearchRefused, "Unknown offense category 'shoplifting'"):
            self.submit(purpose="shoplifting", justification=JUSTIFICATION)
        self.assertEqual(SearchJob.objects.count(), 0)

    def test_a_short_justification_is_refused(self):
        with self.assertRaisesMessage(SearchRefused, "at least 20 characters"):
            self.submit(purpose="Robbery", justification="suspect")
        self.assertEqual(SearchJob.objects.count(), 0)

    def test_a_search_and_its_results_are_audited_with_the_candidates_returned(self):
        job = self.submit(purpose="robbery", justification=JUSTIFICATION)
        started = AuditEntry.objects.get(action="search_started")
        self.assertEqual((started.actor, started.case, started.target_id), (self.alice, self.case, str(job.id)))
        self.assertEqual(started.data["purpose"], "Robbery")
        self.assertEqual(started.data["justification"], JUSTIFICATION)
        self.assertEqual(started.data["probe_hash"], job.probe.content_hash)
        pipeline.search_job_run(job_id=job.id)
        results = AuditEntry.objects.get(action="search_results")
        self.assertEqual(results.data["candidate_ids"], list(job.candidates.values_list("id", flat=True)))
        self.assertEqual(len(results.data["candidate_ids"]), 1)

    def test_a_search_that_found_no_one_is_audited_too(self):
        with self.captureOnCommitCallbacks(execute=False):
            job = probe_submit(
                case=self.case,
                uploaded_by=self.charlie.__class__.objects.get(username="bob"),
                data=image_bytes("PNG", size=(200, 200)),
                purpose="Robbery",
                justification=JUSTIFICATION,
            )
        pipeline.search_job_run(job_id=job.id)
        self.assertEqual(AuditEntry.objects.get(action="search_failed").detail, "No face found in the photo.")

    def test_search_photo_requires_a_purpose_and_a_justification(self):
        out = io.StringIO()
        with self.assertRaises(SystemExit) as exit_info:
            call_command(
                "search_photo",
                str(faces_dir() / "img2.jpg"),
                "--agency",
                "north",
                "--case",
                "N-001",
                "--user",
                "alice",
                "--json",
                stdout=out,
            )
        self.assertEqual(exit_info.exception.code, 1)
        result = json.loads(out.getvalue())
        self.assertEqual((result["status"], result["job"]), ("failed", None))
        self.assertIn("State the purpose of the search", result["error"])
        self.assertEqual(SearchJob.objects.count(), 0)
