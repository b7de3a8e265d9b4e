"""The case report's layout: plain data in, PDF bytes out (reportlab). No database, no storage, no settings:
every value, time and image arrives in the dataclasses below, already read and converted to local time."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from datetime import datetime
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Image, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

LEADS_STATEMENT = (
    "Results of a face search are investigative leads, not identifications. A candidate is a person "
    "whose photo resembles the probe; a confirmed lead was proposed by one person and confirmed by "
    "a second. A lead does not by itself justify an arrest or any other measure."
)


@dataclass(frozen=True)
class ReportReview:
    """The review of one candidate: who proposed it, who decided, and the note."""

    status: str
    proposed_by: str
    proposed_at: datetime
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None
    note: str = ""


@dataclass(frozen=True)
class ReportCandidate:
    """One candidate row; an erased subject has no name, no face and no source."""

    rank: int
    distance: float
    is_match: bool
    erased: bool = False
    display_name: str = ""
    gallery_name: str = ""
    legal_basis: str = ""
    face_jpeg: bytes | None = None
    review: ReportReview | None = None


@dataclass(frozen=True)
class ReportFace:
    """A face found in the probe: its crop and the candidates shown for it."""

    index: int
    crop_jpeg: bytes | None
    candidates: list[ReportCandidate] = field(default_factory=list)
    decision: str = ""  # the open-set answer in words ("Likely candidate", …)
    threshold: float | None = None


@dataclass(frozen=True)
class ReportSearch:
    """One search of the case, with what it was run for and how."""

    photo_name: str
    created_at: datetime
    started_by: str
    purpose: str
    justification: str
    status: str
    error: str
    engine: str
    threshold: float
    faces: list[ReportFace] = field(default_factory=list)


@dataclass(frozen=True)
class ReportLead:
    """A confirmed lead; display_name None: the subject was erased."""

    display_name: str | None
    proposed_by: str
    proposed_at: datetime
    reviewed_by: str
    reviewed_at: datetime


@dataclass(frozen=True)
class CaseReportContents:
    """Everything a case report shows."""

    report_code: str
    case_number: str
    case_title: str
    agency_name: str
    case_status: str
    opened_at: datetime
    opened_by: str
    requested_by: str
    requested_at: datetime
    searches: list[ReportSearch] = field(default_factory=list)
    leads: list[ReportLead] = field(default_factory=list)
    audit_entry_ids: list[int] = field(default_factory=list)


# Control characters (but tab and newline) have no place in a report and reportlab's parser chokes on some.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def text(value) -> str:
    """User text made safe for reportlab's Paragraph markup: shown as written, never read as a tag.

    Paragraphs parse a subset of HTML (<img src>, <a>, <font>, <para>…); every string a user typed or a
    file name they uploaded goes through here, so `<img src="/etc/passwd">` prints as those characters.
    """
    return escape(_CONTROL.sub("", str(value)))


def _styles():
    sheet = getSampleStyleSheet()
    return {
        "title": sheet["Title"],
        "h2": sheet["Heading2"],
        "h3": sheet["Heading3"],
        "body": sheet["BodyText"],
        "small": ParagraphStyle("small", parent=sheet["BodyText"], fontSize=8, leading=10),
        "banner": ParagraphStyle(
            "banner",
            parent=sheet["BodyText"],
            backColor=colors.HexColor("#fef3c7"),
            borderColor=colors.HexColor("#f59e0b"),
            borderWidth=1,
            borderPadding=6,
            textColor=colors.HexColor("#78350f"),
            spaceAfter=10,
        ),
    }


def _image(jpeg: bytes | None, size_mm: float):
    # Only the bytes given are embedded: the contents step decides which stored files may be read.
    if not jpeg:
        return Paragraph("(image no longer held)", _styles()["small"])
    return Image(io.BytesIO(jpeg), width=size_mm * mm, height=size_mm * mm)


def _decision(review: ReportReview | None) -> str:
    if review is None:
        return "—"
    decision = f"{review.status}: {text(review.proposed_by)} {review.proposed_at:%d %b %H:%M}"
    if review.reviewed_by:
        decision += f"; {text(review.reviewed_by)} {review.reviewed_at:%d %b %H:%M}"
    if review.note:
        decision += f" ({text(review.note)})"
    return decision


def _face_block(face: ReportFace, styles) -> KeepTogether:
    rows = [["Rank", "Candidate", "Face", "Distance", "Gallery / legal basis", "Review"]]
    for candidate in face.candidates:
        if candidate.erased:  # the person had their record erased: no name, no face
            who, face_cell, source = "(erased subject)", Paragraph("—", styles["small"]), "—"
        else:
            who, face_cell = text(candidate.display_name), _image(candidate.face_jpeg, 14)
            source = f"{text(candidate.gallery_name)} / {text(candidate.legal_basis)}"
        rows.append(
            [
                str(candidate.rank),
                Paragraph(who, styles["small"]),
                face_cell,
                f"{candidate.distance:.3f}{' *' if candidate.is_match else ''}",
                Paragraph(source, styles["small"]),
                Paragraph(_decision(candidate.review), styles["small"]),
            ]
        )
    table = Table(rows, colWidths=[11 * mm, 32 * mm, 17 * mm, 17 * mm, 48 * mm, 45 * mm], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                ("FONTSIZE", (0, 0), (-1, -1), 8),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#d1d5db")),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f3f4f6")),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
            ]
        )
    )
    return KeepTogether(
        [
            Paragraph(f"Face {face.index}", styles["h3"]),
            Table(
                [
                    [
                        _image(face.crop_jpeg, 30),
                        Paragraph(
                            (f"<b>{text(face.decision)}</b><br/>" if face.decision else "")
                            + f"{len(face.candidates)} candidates shown; * marks a likely candidate"
                            + (f" (distance under the threshold {face.threshold:.3f})." if face.threshold else "."),
                            styles["small"],
                        ),
                    ]
                ],
                colWidths=[35 * mm, 135 * mm],
            ),
            Spacer(1, 2 * mm),
            table,
            Spacer(1, 4 * mm),
        ]
    )


def case_report_pdf(contents: CaseReportContents) -> bytes:
    """The PDF of a case report."""
    styles = _styles()
    story = [
        Paragraph(f"Case report — {text(contents.case_number)}", styles["title"]),
        Paragraph(LEADS_STATEMENT, styles["banner"]),
        Table(
            [
                [label, Paragraph(text(value), styles["body"])]
                for label, value in (
                    ("Case", f"{contents.case_number} — {contents.case_title}"),
                    ("Agency", contents.agency_name),
                    ("Status", contents.case_status),
                    ("Opened", f"{contents.opened_at:%d %b %Y %H:%M} by {contents.opened_by}"),
                    ("Report", f"requested by {contents.requested_by}, {contents.requested_at:%d %b %Y %H:%M}"),
                )
            ],
            colWidths=[30 * mm, 140 * mm],
            style=TableStyle(
                [
                    ("FONTNAME", (0, 0), (0, -1), "Helvetica-Bold"),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            ),
        ),
        Spacer(1, 6 * mm),
    ]
    for number, search in enumerate(contents.searches, start=1):
        story.append(Paragraph(f"Search {number}: {text(search.photo_name)}", styles["h2"]))
        story.append(
            Paragraph(
                f"{search.created_at:%d %b %Y %H:%M} by {text(search.started_by)} · purpose: "
                f"{text(search.purpose)} · justification: {text(search.justification)} · status: {search.status}"
                f"{(' — ' + text(search.error)) if search.error else ''} · engine {text(search.engine)}, "
                f"threshold {search.threshold:.3f}",
                styles["small"],
            )
        )
        story.extend(_face_block(face, styles) for face in search.faces)
    if not contents.searches:
        story.append(Paragraph("No search in this case.", styles["body"]))

    story.append(Paragraph("Confirmed leads", styles["h2"]))
    story.append(Paragraph(LEADS_STATEMENT, styles["small"]))
    for lead in contents.leads:
        story.append(
            Paragraph(
                f"{text(lead.display_name) if lead.display_name is not None else '(erased subject)'}: proposed by "
                f"{text(lead.proposed_by)} ({lead.proposed_at:%d %b %Y %H:%M}), confirmed by "
                f"{text(lead.reviewed_by)} ({lead.reviewed_at:%d %b %Y %H:%M})",
                styles["body"],
            )
        )
    if not contents.leads:
        story.append(Paragraph("None.", styles["body"]))

    story.append(Paragraph("Audit entries of this case", styles["h2"]))
    story.append(Paragraph(", ".join(map(str, contents.audit_entry_ids)) or "None.", styles["small"]))

    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        title=f"Case report {contents.case_number}",
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=16 * mm,
    )

    def footer(canvas, doc):
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.drawString(
            18 * mm,
            9 * mm,
            f"Case {_CONTROL.sub('', contents.case_number)} · "
            f"{_CONTROL.sub('', contents.agency_name)} · leads, not identifications · "
            f"report {contents.report_code} · page {doc.page}",
        )
        canvas.restoreState()

    document.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()
