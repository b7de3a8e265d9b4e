"""The PDF case report: case data, each probe with its faces, the candidates shown, the review decisions,
the audit entry ids, and the statement on leads. Rendered by a worker with reportlab."""

from __future__ import annotations

import io
import logging
import re
from xml.sax.saxutils import escape

from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Image, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from accounts.models import User
from portal.audit import audit_record
from portal.models import AuditEntry, Case, CaseReport

logger = logging.getLogger(__name__)

LEADS_STATEMENT = ("Results of a face search are investigative leads, not identifications. A candidate is a person "
                   "whose photo resembles the probe; a confirmed lead was proposed by one person and confirmed by "
                   "a second. A lead does not by itself justify an arrest or any other measure.")


@transaction.atomic
def case_report_request(*, case: Case, user: User, ip_address: str | None = None) -> CaseReport:
    report = CaseReport.objects.create(case=case, requested_by=user)
    audit_record(action=AuditEntry.Action.REPORT_REQUESTED, actor=user, case=case, target=report,
                 ip_address=ip_address)
    report_id = report.id
    transaction.on_commit(lambda: _enqueue(report_id))
    return report


def _enqueue(report_id: int) -> None:
    from portal.tasks import case_report_render_task

    case_report_render_task.delay(report_id)


def case_report_render(*, report_id: int) -> None:
    """Render and store the PDF; a finished report is left alone (a redelivered task does nothing)."""
    report = CaseReport.objects.select_related("case", "case__agency", "requested_by").filter(pk=report_id).first()
    if report is None or report.status != CaseReport.Status.QUEUED:
        return
    try:
        pdf = _render_pdf(report)
    except Exception:  # noqa: BLE001 - the trace goes to the log, the person who asked gets a clean message
        logger.exception("Case report %s failed", report_id,
                         extra={"report_id": report_id, "agency_id": report.case.agency_id})
        CaseReport.objects.filter(pk=report_id).update(status=CaseReport.Status.FAILED, error=FAILED_MESSAGE,
                                                       finished_at=timezone.now())
        return
    name = f"reports/{report.case.code}/{report.code}.pdf"
    if default_storage.exists(name):
        default_storage.delete(name)
    name = default_storage.save(name, io.BytesIO(pdf))
    with transaction.atomic():
        CaseReport.objects.filter(pk=report_id).update(status=CaseReport.Status.DONE, file=name,
                                                       finished_at=timezone.now())
        audit_record(action=AuditEntry.Action.REPORT_GENERATED, actor=report.requested_by, case=report.case,
                     target=report, detail=f"{len(pdf)} bytes")


# Control characters (but tab and newline) have no place in a report and reportlab's parser chokes on some.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def text(value) -> str:
    """User text made safe for reportlab's Paragraph markup: shown as written, never read as a tag.

    Paragraphs parse a subset of HTML (<img src>, <a>, <font>, <para>…); every string a user typed or a
    file name they uploaded goes through here, so `<img src="/etc/passwd">` prints as those characters.
    """
    return escape(_CONTROL.sub("", str(value)))


FAILED_MESSAGE = "The report could not be made. Prepare it again; if it fails again, tell the platform team " \
                 "the report's reference."


def _styles():
    sheet = getSampleStyleSheet()
    return {
        "title": sheet["Title"],
        "h2": sheet["Heading2"],
        "h3": sheet["Heading3"],
        "body": sheet["BodyText"],
        "small": ParagraphStyle("small", parent=sheet["BodyText"], fontSize=8, leading=10),
        "banner": ParagraphStyle("banner", parent=sheet["BodyText"], backColor=colors.HexColor("#fef3c7"),
                                 borderColor=colors.HexColor("#f59e0b"), borderWidth=1, borderPadding=6,
                                 textColor=colors.HexColor("#78350f"), spaceAfter=10),
    }


# The only places the product writes images; a report embeds nothing else.
_IMAGE_PREFIXES = ("crops/", "probes/", "gallery/")


def _image(field, size_mm: float):
    name = field.name if field else ""
    if (not name or not name.startswith(_IMAGE_PREFIXES) or ".." in name.split("/")
            or not default_storage.exists(name)):
        return Paragraph("(image no longer held)", _styles()["small"])
    with default_storage.open(name, "rb") as stored:
        return Image(io.BytesIO(stored.read()), width=size_mm * mm, height=size_mm * mm)


def _render_pdf(report: CaseReport) -> bytes:
    from search.models import LeadReview, SearchJob

    case = report.case
    styles = _styles()
    story = [
        Paragraph(f"Case report — {text(case.number)}", styles["title"]),
        Paragraph(LEADS_STATEMENT, styles["banner"]),
        Table([[label, Paragraph(text(value), styles["body"])] for label, value in (
            ("Case", f"{case.number} — {case.title}"),
            ("Agency", case.agency.name),
            ("Status", case.get_status_display()),
            ("Opened", f"{timezone.localtime(case.created_at):%d %b %Y %H:%M} by {case.created_by.username}"),
            ("Report", f"requested by {report.requested_by.username}, "
                       f"{timezone.localtime(report.created_at):%d %b %Y %H:%M}"),
        )], colWidths=[30 * mm, 140 * mm], style=TableStyle([
            ("FONTNAME", (0, 0), (0, -1), "Helvetica-Bold"), ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ])),
        Spacer(1, 6 * mm),
    ]
    jobs = (SearchJob.objects.filter(probe__case=case, agency_id=case.agency_id)
            .select_related("probe", "started_by", "offense_category").order_by("created_at"))
    for number, job in enumerate(jobs, start=1):
        story.append(Paragraph(f"Search {number}: {text(job.probe.original_name or 'probe photo')}", styles["h2"]))
        story.append(Paragraph(
            f"{timezone.localtime(job.created_at):%d %b %Y %H:%M} by {text(job.started_by.username)} · purpose: "
            f"{text(job.offense_category.name if job.offense_category else '—')} · justification: "
            f"{text(job.justification or '—')} · status: {job.get_status_display()}"
            f"{(' — ' + text(job.error)) if job.error else ''} · engine {text(job.engine)}, "
            f"threshold {job.threshold:.2f}", styles["small"]))
        for face in job.probe.faces.order_by("index"):
            candidates = list(job.candidates.filter(probe_face=face).select_related(
                "profile", "profile__gallery", "face_image", "review", "review__proposed_by", "review__reviewed_by")
                .order_by("rank"))
            rows = [["Rank", "Candidate", "Face", "Distance", "Gallery / legal basis", "Review"]]
            for candidate in candidates:
                review = getattr(candidate, "review", None)
                decision = "—"
                if review:
                    decision = (f"{review.get_status_display()}: {text(review.proposed_by.username)} "
                                f"{timezone.localtime(review.proposed_at):%d %b %H:%M}")
                    if review.reviewed_by:
                        decision += (f"; {text(review.reviewed_by.username)} "
                                     f"{timezone.localtime(review.reviewed_at):%d %b %H:%M}")
                    if review.review_note or review.proposal_note:
                        decision += f" ({text(review.review_note or review.proposal_note)})"
                if candidate.erased_at:  # the person had their record erased: no name, no face
                    who, face_cell, source = "(erased subject)", Paragraph("—", styles["small"]), "—"
                else:
                    who, face_cell = text(candidate.profile.display_name), _image(candidate.face_image.crop, 14)
                    source = f"{text(candidate.profile.gallery.name)} / {text(candidate.profile.gallery.legal_basis)}"
                rows.append([str(candidate.rank), Paragraph(who, styles["small"]), face_cell,
                             f"{candidate.distance:.3f}{' *' if candidate.is_match() else ''}",
                             Paragraph(source, styles["small"]), Paragraph(decision, styles["small"])])
            table = Table(rows, colWidths=[11 * mm, 32 * mm, 17 * mm, 17 * mm, 48 * mm, 45 * mm], repeatRows=1)
            table.setStyle(TableStyle([
                ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"), ("FONTSIZE", (0, 0), (-1, -1), 8),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#d1d5db")),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f3f4f6")), ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
            ]))
            story.append(KeepTogether([
                Paragraph(f"Face {face.index}", styles["h3"]),
                Table([[_image(face.crop, 30), Paragraph(
                    f"{len(candidates)} candidates shown; * marks a distance under the threshold.", styles["small"])]],
                    colWidths=[35 * mm, 135 * mm]),
                Spacer(1, 2 * mm), table, Spacer(1, 4 * mm),
            ]))
    if not jobs:
        story.append(Paragraph("No search in this case.", styles["body"]))

    leads = (LeadReview.objects.filter(candidate__job__probe__case=case, status=LeadReview.Status.CONFIRMED)
             .select_related("candidate__profile", "proposed_by", "reviewed_by"))
    story.append(Paragraph("Confirmed leads", styles["h2"]))
    story.append(Paragraph(LEADS_STATEMENT, styles["small"]))
    for lead in leads:
        story.append(Paragraph(
            f"{text(lead.candidate.profile.display_name) if lead.candidate.profile else '(erased subject)'}: proposed by "
            f"{text(lead.proposed_by.username)} ({timezone.localtime(lead.proposed_at):%d %b %Y %H:%M}), confirmed by "
            f"{text(lead.reviewed_by.username)} "
            f"({timezone.localtime(lead.reviewed_at):%d %b %Y %H:%M})", styles["body"]))
    if not leads:
        story.append(Paragraph("None.", styles["body"]))

    entry_ids = list(AuditEntry.objects.filter(case=case).order_by("id").values_list("id", flat=True))
    story.append(Paragraph("Audit entries of this case", styles["h2"]))
    story.append(Paragraph(", ".join(map(str, entry_ids)) or "None.", styles["small"]))

    buffer = io.BytesIO()
    document = SimpleDocTemplate(buffer, pagesize=A4, title=f"Case report {case.number}",
                                 leftMargin=18 * mm, rightMargin=18 * mm, topMargin=16 * mm, bottomMargin=16 * mm)

    def footer(canvas, doc):
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.drawString(18 * mm, 9 * mm, f"Case {_CONTROL.sub('', case.number)} · {_CONTROL.sub('', case.agency.name)} · leads, not identifications · "
                                           f"report {report.code} · page {doc.page}")
        canvas.restoreState()

    document.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()
