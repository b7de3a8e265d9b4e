"""The PDF case report: rendered by the task, downloaded through a permission-checked view, both audited;
checked by reading the PDF back and rendering its first page."""

import io
import shutil
import subprocess
import tempfile
from pathlib import Path

from django.conf import settings
from django.test import TestCase
from django.urls import reverse
from PIL import Image
from pypdf import PdfReader

from portal.models import AuditEntry, CaseReport
from portal.reports.render import case_report_render
from portal.services import case_report_request
from search import pipeline
from search.enrolment import EnrolmentItem, gallery_enrol_batch, gallery_get_or_create
from search.leads import candidate_mark, lead_decide
from search.services import probe_submit
from tests.base import GALLERY_PROVENANCE, AgencyFixtureMixin, faces_dir, photo_bytes, sign_in


class CaseReportTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        gallery, _ = gallery_get_or_create(
            owner=cls.north, name="North bookings", legal_basis="Police Act s.64", **GALLERY_PROVENANCE
        )
        gallery_enrol_batch(
            gallery=gallery,
            gallery_created=True,
            items=[
                EnrolmentItem(path=str(faces_dir() / name), display_name=who)
                for name, who in (("img1.jpg", "Alex Example"), ("img16.jpg", "Sam Sample"))
            ],
        )
        job = probe_submit(
            case=cls.case, uploaded_by=cls.alice, data=photo_bytes("img2.jpg"), original_name="cctv-still.jpg"
        )
        pipeline.search_job_run(job_id=job.id)
        candidate = job.candidates.get(rank=1)
        candidate_mark(user=cls.alice, candidate=candidate, decision="possible_lead", note="same eyebrows")
        lead_decide(user=cls.bob, candidate=candidate, confirm=True, note="agreed")

    def make_report(self) -> CaseReport:
        with self.captureOnCommitCallbacks(execute=False) as callbacks:
            report = case_report_request(case=self.case, user=self.bob)
        self.assertEqual(len(callbacks), 1)
        case_report_render(report_id=report.id)
        report.refresh_from_db()
        return report

    def test_the_report_holds_the_case_the_candidates_the_decisions_and_the_audit_ids(self):
        report = self.make_report()
        self.assertEqual(report.status, CaseReport.Status.DONE)
        sign_in(self.client, self.alice)
        response = self.client.get(reverse("portal:case-report-download", args=[report.code]))
        self.assertEqual(response["Content-Type"], "application/pdf")
        self.assertEqual(response["Cache-Control"], "private, no-store")
        pdf_bytes = b"".join(response.streaming_content)
        text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf_bytes)).pages)
        for expected in (
            "Case report — N-001",
            "Robbery at the station",
            "cctv-still.jpg",
            "Alex Example",
            "Sam Sample",
            "Police Act s.64",
            "Confirmed lead",
            "alice",
            "bob",
            "not identifications",
            "Robbery",
        ):
            self.assertIn(expected, text)
        first_id = AuditEntry.objects.filter(case=self.case).order_by("id").first().id
        self.assertIn(str(first_id), text)
        self.assertTrue(AuditEntry.objects.filter(action="report_generated", target_id=str(report.id)).exists())
        self.assertTrue(AuditEntry.objects.filter(action="report_downloaded", actor=self.alice).exists())
        self.render_first_page(pdf_bytes)

    def render_first_page(self, pdf_bytes: bytes) -> None:
        if not shutil.which("pdftoppm"):
            self.fail("pdftoppm (Debian's poppler-utils) is missing: run scripts/install.sh")
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "report.pdf").write_bytes(pdf_bytes)
            subprocess.run(
                ["pdftoppm", "-png", "-r", "90", "-f", "1", "-l", "1", "report.pdf", "page"], cwd=tmp, check=True
            )
            page = next(Path(tmp).glob("page*.png"))
            image = Image.open(page).convert("L")
            self.assertLess(image.getextrema()[0], 100)  # something dark is drawn: text, faces
            target = Path(settings.BASE_DIR) / "docs" / "screenshots" / "case-report-page1.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(page, target)

    def test_another_agency_cannot_download_or_request_a_report(self):
        report = self.make_report()
        sign_in(self.client, self.dave)
        self.assertEqual(self.client.get(reverse("portal:case-report-download", args=[report.code])).status_code, 404)
        self.assertEqual(
            self.client.post(reverse("portal:case-report-request", args=[self.case.code])).status_code, 404
        )

    def test_a_report_not_ready_is_not_served(self):
        with self.captureOnCommitCallbacks(execute=False):
            report = case_report_request(case=self.case, user=self.bob)
        sign_in(self.client, self.bob)
        self.assertEqual(self.client.get(reverse("portal:case-report-download", args=[report.code])).status_code, 404)
        page = self.client.get(reverse("portal:case-detail", args=[self.case.code]))
        self.assertContains(page, "Being prepared")
