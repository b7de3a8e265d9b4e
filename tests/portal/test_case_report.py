"""The PDF case report: rendered by the task, downloaded through a permission-checked view, both audited;
checked by reading the PDF back as text page by page, counting its pages, and rendering pages to PNG."""

import dataclasses
import io
import shutil
import subprocess
import tempfile
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone
from PIL import Image
from pypdf import PdfReader

from portal.models import AuditEntry, CaseReport
from portal.reports import layout
from portal.reports.contents import case_report_contents
from portal.reports.render import case_report_render
from portal.services import case_report_request
from search import pipeline
from search.enrolment import EnrolmentItem, gallery_enrol_batch, gallery_get_or_create
from search.models import ComparisonRecord, LeadReview, ProbeEdit
from search.services import probe_submit
from tests.base import GALLERY_PROVENANCE, AgencyFixtureMixin, faces_dir, photo_bytes, sign_in

HASH_A, HASH_B = "a" * 64, "b" * 64
PENDING_NOTE = "proposer's private reasoning"
SCREENSHOTS = Path(settings.BASE_DIR) / "docs" / "screenshots"


def blank_photo() -> bytes:
    """A photo with no face in it: a grey wall."""
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (128, 128, 120)).save(buffer, "JPEG")
    return buffer.getvalue()


def review_make(candidate, *, proposed_by, conclusion, reviewed_by=None, verifier_conclusion="", note=""):
    """The rows two-person verification leaves (search/leads.py writes them; made here directly, so the
    report is tested on the rows whatever the review pages look like)."""
    now = timezone.now()
    LeadReview.objects.create(
        candidate=candidate,
        status=LeadReview.Status.CONFIRMED if reviewed_by else LeadReview.Status.POSSIBLE_LEAD,
        proposed_by=proposed_by,
        proposed_at=now - timedelta(minutes=5),
        proposal_note=note,
        reviewed_by=reviewed_by,
        reviewed_at=now if reviewed_by else None,
        review_note="agreed" if reviewed_by else "",
    )
    ComparisonRecord.objects.create(
        candidate=candidate,
        examiner=proposed_by,
        role="proposer",
        conclusion=conclusion,
        notes=note,
        created_at=now - timedelta(minutes=5),
    )
    if reviewed_by:
        ComparisonRecord.objects.create(
            candidate=candidate, examiner=reviewed_by, role="verifier", conclusion=verifier_conclusion, created_at=now
        )


def pdf_pages(pdf_bytes: bytes) -> list[str]:
    return [" ".join((page.extract_text() or "").split()) for page in PdfReader(io.BytesIO(pdf_bytes)).pages]


def render_page(pdf_bytes: bytes, number: int, target: Path) -> Image.Image:
    """One page as a PNG (Debian's pdftoppm), saved to target for a person to look at."""
    if not shutil.which("pdftoppm"):
        raise AssertionError("pdftoppm (Debian's poppler-utils) is missing: run scripts/install.sh")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "report.pdf").write_bytes(pdf_bytes)
        subprocess.run(
            ["pdftoppm", "-png", "-r", "100", "-f", str(number), "-l", str(number), "report.pdf", "page"],
            cwd=tmp,
            check=True,
        )
        page = next(Path(tmp).glob("page*.png"))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(page, target)
        return Image.open(target).convert("L")


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
        # Search 1: a photo of Alex, edited before the search; its first candidate confirmed by two people.
        cls.lead_job = probe_submit(
            case=cls.case,
            uploaded_by=cls.alice,
            data=photo_bytes("img2.jpg"),
            original_name="cctv-still.jpg",
            justification="CCTV of the robbery at platform 2",
        )
        pipeline.search_job_run(job_id=cls.lead_job.id)
        cls.lead_job.refresh_from_db()
        now = timezone.now()
        for number, operation, parameters, before, after in (
            (1, "crop", {"box": [10, 20, 300, 300]}, cls.lead_job.probe.content_hash, HASH_A),
            (2, "rotate", {"degrees": 90}, HASH_A, HASH_B),
        ):
            ProbeEdit.objects.create(
                probe=cls.lead_job.probe,
                number=number,
                operation=operation,
                parameters=parameters,
                made_by=cls.alice,
                hash_before=before,
                hash_after=after,
                created_at=now - timedelta(minutes=10 - number),
            )
        review_make(
            cls.lead_job.candidates.get(rank=1),
            proposed_by=cls.alice,
            conclusion="supports",
            reviewed_by=cls.bob,
            verifier_conclusion="strongly_supports",
            note="same eyebrows",
        )
        # Search 2: a stranger, a still of a video; its nearest candidate proposed, waiting for the second person.
        cls.stranger_job = probe_submit(
            case=cls.case,
            uploaded_by=cls.alice,
            data=(faces_dir().parent / "openset" / "adams.jpg").read_bytes(),
            original_name="stranger.jpg",
            justification="Witness photo from the platform",
        )
        pipeline.search_job_run(job_id=cls.stranger_job.id)
        cls.stranger_job.probe.__class__.objects.filter(pk=cls.stranger_job.probe_id).update(
            video_hash="c" * 64, frame_time_ms=12480
        )
        review_make(
            cls.stranger_job.candidates.get(rank=1),
            proposed_by=cls.alice,
            conclusion="strongly_supports",
            note=PENDING_NOTE,
        )
        # Search 3: no face at all.
        cls.empty_job = probe_submit(
            case=cls.case,
            uploaded_by=cls.alice,
            data=blank_photo(),
            original_name="grey-wall.jpg",
            justification="Photo sent in by a witness by mistake",
        )
        pipeline.search_job_run(job_id=cls.empty_job.id)

    def make_report(self) -> CaseReport:
        with self.captureOnCommitCallbacks(execute=False) as callbacks:
            report = case_report_request(case=self.case, user=self.bob)
        self.assertEqual(len(callbacks), 1)
        case_report_render(report_id=report.id)
        report.refresh_from_db()
        return report

    def download(self, report: CaseReport) -> bytes:
        sign_in(self.client, self.alice)
        response = self.client.get(reverse("portal:case-report-download", args=[report.code]))
        self.assertEqual(response["Content-Type"], "application/pdf")
        self.assertEqual(response["Cache-Control"], "private, no-store")
        return b"".join(response.streaming_content)

    def test_page_one_is_the_summary_with_the_confirmed_lead_and_both_verifiers(self):
        self.empty_job.refresh_from_db()
        self.assertTrue(self.empty_job.found_no_face, self.empty_job.error)
        report = self.make_report()
        self.assertEqual(report.status, CaseReport.Status.DONE, report.error)
        pages = pdf_pages(self.download(report))
        first = pages[0]
        for expected in (
            "Case report — N-001",
            "Robbery at the station",
            "North Police",
            str(report.code),
            "requested by bob",
            "A lead is not an identification",
            "3 — 1 found no likely candidate, 1 found no face",
            "Confirmed leads 1",
            "Alex Example",
            "search 1, face 1",
            "alice",
            "conclusion: Supports a lead",
            "conclusion: Strongly supports a lead",
            "1 possible lead (not confirmed",
            f"{len(pages)} pages",
            "stranger.jpg · no likely candidate",
            "grey-wall.jpg · no face found",
        ):
            self.assertIn(expected, first)
        # Nothing of the details: no hash, no edit, no candidate table on page 1.
        for detail in (self.lead_job.probe.content_hash, "SHA-256", "Sam Sample", "Gallery / legal basis", "Rotate"):
            self.assertNotIn(detail, first)
        self.assertIn("Sign-off", pages[-1])
        self.assertTrue(AuditEntry.objects.filter(action="report_generated", target_id=str(report.id)).exists())
        self.assertTrue(AuditEntry.objects.filter(action="report_downloaded", actor=self.alice).exists())

    def test_every_search_appears_with_its_hashes_edits_and_decisions(self):
        pdf_bytes = self.download(self.make_report())
        details = " ".join(pdf_pages(pdf_bytes)[1:])
        for expected in (
            "Search 1 · cctv-still.jpg",
            "Search 2 · stranger.jpg",
            "Search 3 · grey-wall.jpg",
            f"SHA-256 {self.lead_job.probe.content_hash}",
            "Crop",
            "box [10, 20, 300, 300]",
            "Rotate",
            HASH_A,
            HASH_B,
            "No edits: the photo was searched as received.",
            "still at 00:12.480 of a video",
            "c" * 64,
            "Robbery",
            "CCTV of the robbery at platform 2",
            "Witness photo from the platform",
            "calibration v" if self.lead_job.thresholds else "fixed bound",
            "Face 1: Likely candidate",
            "Face 1: No likely candidate",
            "No face found in the photo",
            "Police Act s.64",
            "Confirmed lead",
            "awaiting verification",
            "above the likely-candidate threshold not shown",
            "Prepared by",
            "Reviewed by",
            "Signature",
        ):
            self.assertIn(expected, details)
        # The default choice: Sam Sample (not likely, not reviewed) is counted in search 1, not shown.
        self.assertNotIn("Sam Sample", details.split("Search 2 ·")[0])
        first_id = AuditEntry.objects.filter(case=self.case).order_by("id").first().id
        self.assertIn(str(first_id), details)
        render_page(pdf_bytes, 1, SCREENSHOTS / "report-page-1.png")
        image = render_page(pdf_bytes, 2, SCREENSHOTS / "report-search.png")
        self.assertLess(image.getextrema()[0], 100)  # something dark is drawn: text, faces

    def test_a_pending_proposal_shows_awaiting_verification_and_never_its_conclusion(self):
        text = " ".join(pdf_pages(self.download(self.make_report())))
        pending_search = text.split("Search 2 ·")[1].split("Search 3 ·")[0]
        self.assertIn("Possible lead, proposed by alice", pending_search)
        self.assertIn("awaiting verification", pending_search)
        self.assertNotIn("conclusion", pending_search)
        self.assertNotIn(PENDING_NOTE, text)

    def test_twenty_searches_stay_compact(self):
        """Page counts for 1, 5 and 20 searches (docs/case-report.md): the real searches above, repeated."""
        contents = case_report_contents(report=self.make_report())
        one_face = [s for s in contents.searches if s.faces]
        counts = {}
        for n in (1, 5, 20):
            searches = [dataclasses.replace(one_face[i % len(one_face)], number=i + 1) for i in range(n)]
            pdf = layout.case_report_pdf(dataclasses.replace(contents, searches=searches))
            counts[n] = len(PdfReader(io.BytesIO(pdf)).pages)
            self.assertIn(f"Search {n} ·", " ".join(pdf_pages(pdf)))
        print("case report pages for 1, 5, 20 searches:", counts)
        # Measured: 2, 4 and 11 pages (summary, searches several to a page, sign-off).
        self.assertLessEqual(counts[1], 2)
        self.assertLessEqual(counts[5], 4)
        self.assertLessEqual(counts[20], 12)

    def test_the_status_url_turns_into_the_download_link(self):
        with self.captureOnCommitCallbacks(execute=False):
            report = case_report_request(case=self.case, user=self.bob)
        sign_in(self.client, self.bob)
        url = reverse("portal:case-report-status", args=[report.code])
        status = self.client.get(url)
        self.assertEqual(status["Cache-Control"], "private, no-store")
        self.assertEqual(
            status.json(),
            {
                "status": "queued",
                "status_label": "Being prepared",
                "finished": False,
                "download_url": None,
                "message": "",
            },
        )
        case_report_render(report_id=report.id)
        ready = self.client.get(url).json()
        self.assertTrue(ready["finished"])
        self.assertEqual(ready["download_url"], reverse("portal:case-report-download", args=[report.code]))
        self.assertEqual(self.client.post(url).status_code, 405)

    def test_another_agency_cannot_download_request_or_poll_a_report(self):
        report = self.make_report()
        sign_in(self.client, self.dave)
        self.assertEqual(self.client.get(reverse("portal:case-report-download", args=[report.code])).status_code, 404)
        self.assertEqual(self.client.get(reverse("portal:case-report-status", args=[report.code])).status_code, 404)
        self.assertEqual(
            self.client.post(reverse("portal:case-report-request", args=[self.case.code])).status_code, 404
        )

    def test_a_report_not_ready_is_not_served_and_the_card_polls_it(self):
        with self.captureOnCommitCallbacks(execute=False):
            report = case_report_request(case=self.case, user=self.bob)
        sign_in(self.client, self.bob)
        self.assertEqual(self.client.get(reverse("portal:case-report-download", args=[report.code])).status_code, 404)
        page = self.client.get(reverse("portal:case-detail", args=[self.case.code]))
        self.assertContains(page, "Being prepared")
        self.assertContains(page, f'data-report-status="{reverse("portal:case-report-status", args=[report.code])}"')
        self.assertContains(page, "portal/report.js")
