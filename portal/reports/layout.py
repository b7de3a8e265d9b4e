"""The case report's layout: plain data in, PDF bytes out (reportlab). No database, no storage, no settings:
every value, time and image arrives in the dataclasses below, already read and converted to local time.

Order (docs/case-report.md): page 1 is the conclusion — the case, the statement that a lead is not an
identification, the summary with the confirmed leads, and the contents; then one compact section per
search, several to a page; last the sign-off block and the audit entry ids."""

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
from reportlab.platypus import (
    CondPageBreak,
    Flowable,
    Image,
    KeepTogether,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

LEADS_STATEMENT = (
    "A lead is not an identification. Results of a face search are investigative leads, not identifications: "
    "a candidate is a person whose photo resembles the probe; a confirmed lead was proposed by one person and "
    "confirmed by a second. A lead does not by itself justify an arrest or any other measure."
)
AWAITING = "awaiting verification"

WIDTH = 174 * mm  # A4 less the margins
GREY = colors.HexColor("#d1d5db")
PALE = colors.HexColor("#f3f4f6")


@dataclass(frozen=True)
class ReportReview:
    """The review of one candidate. The conclusions (structured comparisons) are given only once the lead is
    decided: a pending proposal is verified blind, so neither its conclusion nor its note is printed."""

    status: str
    proposed_by: str
    proposed_at: datetime
    pending: bool = False
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None
    note: str = ""
    proposer_conclusion: str = ""
    verifier_conclusion: str = ""


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
    """A face found in the probe: its crop, quality, decision, and the candidates chosen for the report."""

    index: int
    crop_jpeg: bytes | None
    candidates: list[ReportCandidate] = field(default_factory=list)
    decision: str = ""  # the open-set answer in words ("Likely candidate", …)
    low_quality: bool = False
    quality: str = ""  # in words: eye distance, sharpness, usable or not
    threshold: float | None = None
    not_shown: int = 0  # candidates returned but left out of the report by the choice rule


@dataclass(frozen=True)
class ReportEdit:
    """One recorded edit of the probe before its search."""

    number: int
    operation: str
    parameters: str
    made_by: str
    made_at: datetime
    hash_before: str
    hash_after: str


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
    number: int = 0
    finished_at: datetime | None = None
    probe_jpeg: bytes | None = None
    content_hash: str = ""
    prepared_hash: str = ""
    edits: list[ReportEdit] = field(default_factory=list)
    video_line: str = ""  # "still at 00:12.480 of video <hash>", empty for a photo
    thresholds: list[str] = field(default_factory=list)  # one line per engine
    face_choice: str = ""
    found_no_face: bool = False
    done: bool = True  # the search ran to the end (a search that found no face failed)

    @property
    def has_likely(self) -> bool:
        return any(c.is_match for f in self.faces for c in f.candidates)

    @property
    def outcome(self) -> str:
        if self.found_no_face:
            return "no face found"
        if not self.done:
            return f"{self.status.lower()}{(' — ' + self.error) if self.error else ''}"
        likely = sum(c.is_match for f in self.faces for c in f.candidates)
        return f"{likely} likely candidate{'s' if likely != 1 else ''}" if likely else "no likely candidate"


@dataclass(frozen=True)
class ReportLead:
    """A confirmed lead; display_name None: the subject was erased."""

    display_name: str | None
    proposed_by: str
    proposed_at: datetime
    reviewed_by: str
    reviewed_at: datetime
    distance: float | None = None
    search_number: int = 0
    face_index: int = 0
    probe_crop_jpeg: bytes | None = None
    candidate_jpeg: bytes | None = None
    proposer_conclusion: str = ""
    verifier_conclusion: str = ""
    # The lineup gate (search/lineup.py): cleared for identification procedures, with the evidence, or not.
    identification_procedures: str = ""


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
    generated_at: datetime | None = None
    pending_leads: int = 0  # possible leads awaiting verification: a count, nothing more
    candidate_rule: str = "likely candidates and those with a review"


# Control characters (but tab and newline) have no place in a report and reportlab's parser chokes on some.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def text(value) -> str:
    """User text made safe for reportlab's Paragraph markup: shown as written, never read as a tag.

    Paragraphs parse a subset of HTML (<img src>, <a>, <font>, <para>…); every string a user typed or a
    file name they uploaded goes through here, so `<img src="/etc/passwd">` prints as those characters.
    """
    return escape(_CONTROL.sub("", str(value)))


def _when(value: datetime | None) -> str:
    return f"{value:%d %b %Y %H:%M}" if value else "—"


def _styles():
    sheet = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=sheet["BodyText"], fontSize=9, leading=11.5)
    return {
        "title": ParagraphStyle("title", parent=sheet["Title"], fontSize=17, leading=21, spaceAfter=4),
        "h2": ParagraphStyle("h2", parent=sheet["Heading2"], fontSize=12, leading=15, spaceBefore=6, spaceAfter=3),
        "search": ParagraphStyle(
            "search",
            parent=sheet["Heading3"],
            fontName="Helvetica-Bold",
            fontSize=10,
            leading=13,
            spaceBefore=0,
            spaceAfter=2,
            backColor=PALE,
            borderPadding=(2, 3, 2, 3),
        ),
        "body": body,
        "small": ParagraphStyle("small", parent=body, fontSize=7.5, leading=9.2),
        "mono": ParagraphStyle("mono", parent=body, fontName="Courier", fontSize=6.5, leading=8),
        "banner": ParagraphStyle(
            "banner",
            parent=body,
            backColor=colors.HexColor("#fef3c7"),
            borderColor=colors.HexColor("#f59e0b"),
            borderWidth=1,
            borderPadding=6,
            textColor=colors.HexColor("#78350f"),
            spaceBefore=4,
            spaceAfter=10,
        ),
    }


def _image(jpeg: bytes | None, size_mm: float, styles):
    # Only the bytes given are embedded: the contents step decides which stored files may be read.
    if not jpeg:
        return Paragraph("(image no longer held)", styles["small"])
    picture = Image(io.BytesIO(jpeg), width=size_mm * mm, height=size_mm * mm, kind="proportional")
    return picture


def _grid(rows, widths, *, header=True, padding=2) -> Table:
    table = Table(rows, colWidths=widths, repeatRows=1 if header else 0)
    commands = [
        ("FONTSIZE", (0, 0), (-1, -1), 7.5),
        ("GRID", (0, 0), (-1, -1), 0.25, GREY),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("TOPPADDING", (0, 0), (-1, -1), padding),
        ("BOTTOMPADDING", (0, 0), (-1, -1), padding),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
    ]
    if header:
        commands += [("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"), ("BACKGROUND", (0, 0), (-1, 0), PALE)]
    table.setStyle(TableStyle(commands))
    return table


def _pairs(rows, styles, label_width=30 * mm, width=WIDTH) -> Table:
    """A label / value table without lines; values are already-escaped markup."""
    table = Table(
        [[Paragraph(f"<b>{label}</b>", styles["small"]), value] for label, value in rows],
        colWidths=[label_width, width - label_width],
    )
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 1),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
                ("LEFTPADDING", (0, 0), (-1, -1), 0),
            ]
        )
    )
    return table


def _conclusion(words: str) -> str:
    return f", conclusion: <i>{text(words)}</i>" if words else ""


def _decision(review: ReportReview | None) -> str:
    """A review in words; a pending proposal is only 'awaiting verification' (the verifier works blind)."""
    if review is None:
        return "—"
    if review.pending:
        proposed = f"{text(review.proposed_by)} {review.proposed_at:%d %b %H:%M}"
        return f"{text(review.status)}, proposed by {proposed} — {AWAITING}"
    decision = (
        f"<b>{text(review.status)}</b>: {text(review.proposed_by)} {review.proposed_at:%d %b %H:%M}"
        f"{_conclusion(review.proposer_conclusion)}"
    )
    if review.reviewed_by:
        decision += (
            f"; {text(review.reviewed_by)} {review.reviewed_at:%d %b %H:%M}{_conclusion(review.verifier_conclusion)}"
        )
    if review.note:
        decision += f" ({text(review.note)})"
    return decision


# --- Page 1: the conclusion ------------------------------------------------------------------------


def _summary(contents: CaseReportContents, styles, pages: dict) -> list:
    searches = contents.searches
    no_face = sum(s.found_no_face for s in searches)
    no_likely = sum(s.done and not s.has_likely for s in searches)
    other = len(searches) - no_face - sum(s.done for s in searches)
    faces = sum(len(s.faces) for s in searches)
    story = [
        Paragraph(f"Case report — {text(contents.case_number)}", styles["title"]),
        Paragraph(text(contents.case_title), styles["h2"]),
        _pairs(
            [
                ("Agency", Paragraph(text(contents.agency_name), styles["body"])),
                (
                    "Case",
                    Paragraph(
                        f"{text(contents.case_number)} · {text(contents.case_status)} · opened "
                        f"{_when(contents.opened_at)} by {text(contents.opened_by)}",
                        styles["body"],
                    ),
                ),
                (
                    "Report",
                    Paragraph(
                        f"reference {text(contents.report_code)}<br/>requested by {text(contents.requested_by)} "
                        f"{_when(contents.requested_at)} · generated {_when(contents.generated_at)}",
                        styles["body"],
                    ),
                ),
            ],
            styles,
            label_width=22 * mm,
        ),
        Paragraph(f"<b>{LEADS_STATEMENT.split('. ', 1)[0]}.</b> {LEADS_STATEMENT.split('. ', 1)[1]}", styles["banner"]),
        Paragraph("Summary", styles["h2"]),
        _pairs(
            [
                (
                    "Searches",
                    Paragraph(
                        f"<b>{len(searches)}</b> — {no_likely} found no likely candidate, {no_face} found no face"
                        + (f", {other} failed or not finished" if other else ""),
                        styles["body"],
                    ),
                ),
                ("Faces searched", Paragraph(str(faces), styles["body"])),
                (
                    "Purposes",
                    Paragraph(
                        text(", ".join(sorted({search.purpose for search in searches if search.purpose})) or "—"),
                        styles["body"],
                    ),
                ),
                ("Confirmed leads", Paragraph(f"<b>{len(contents.leads)}</b>", styles["body"])),
                (
                    "Awaiting verification",
                    Paragraph(
                        f"{contents.pending_leads} possible lead{'s' if contents.pending_leads != 1 else ''} "
                        "(not confirmed; not counted as leads)",
                        styles["body"],
                    ),
                ),
                ("Candidates shown", Paragraph(text(contents.candidate_rule), styles["body"])),
            ],
            styles,
            label_width=38 * mm,
        ),
        Spacer(1, 3 * mm),
        Paragraph("Confirmed leads", styles["h2"]),
    ]
    if contents.leads:
        rows = [["Probe", "Candidate", "Who / where", "Distance", "Proposed by", "Verified by"]]
        for lead in contents.leads:
            name = text(lead.display_name) if lead.display_name is not None else "(erased subject)"
            rows.append(
                [
                    _image(lead.probe_crop_jpeg, 14, styles),
                    _image(lead.candidate_jpeg, 14, styles) if lead.display_name is not None else "—",
                    Paragraph(
                        f"<b>{name}</b><br/>search {lead.search_number}, face {lead.face_index}", styles["small"]
                    ),
                    f"{lead.distance:.3f}" if lead.distance is not None else "—",
                    Paragraph(
                        f"{text(lead.proposed_by)}<br/>{_when(lead.proposed_at)}{_conclusion(lead.proposer_conclusion)}",
                        styles["small"],
                    ),
                    Paragraph(
                        f"{text(lead.reviewed_by)}<br/>{_when(lead.reviewed_at)}{_conclusion(lead.verifier_conclusion)}",
                        styles["small"],
                    ),
                ]
            )
        story.append(_grid(rows, [17 * mm, 17 * mm, 44 * mm, 16 * mm, 40 * mm, 40 * mm]))
        story.append(Paragraph("Identification procedures (lineup, arrest request)", styles["body"]))
        for lead in contents.leads:
            name = text(lead.display_name) if lead.display_name is not None else "(erased subject)"
            story.append(
                Paragraph(
                    f"<b>{name}</b> (search {lead.search_number}, face {lead.face_index}): "
                    f"{text(lead.identification_procedures or 'Not cleared for identification procedures.')}",
                    styles["small"],
                )
            )
    else:
        story.append(Paragraph("No confirmed lead in this case.", styles["body"]))

    story += [Spacer(1, 3 * mm), Paragraph("Contents", styles["h2"])]
    total = pages.get("total", "…")
    story.append(
        Paragraph(
            f"{total} page{'s' if total != 1 else ''} · summary p. 1 · searches from p. {pages.get('searches', '…')}"
            f" · sign-off and audit entries p. {pages.get('signoff', '…')}",
            styles["small"],
        )
    )
    if searches:
        cells = [
            Paragraph(
                f"<b>{s.number}</b> {text(_short(s.photo_name))} · {text(s.outcome)} · p. "
                f"{pages.get(('search', s.number), '…')}",
                styles["small"],
            )
            for s in searches
        ]
        columns = 3
        while len(cells) % columns:
            cells.append("")
        table = Table(
            [cells[i : i + columns] for i in range(0, len(cells), columns)], colWidths=[WIDTH / columns] * columns
        )
        table.setStyle(TableStyle([("TOPPADDING", (0, 0), (-1, -1), 0.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 0.5)]))
        story.append(table)
    return story


def _short(name: str, length: int = 28) -> str:
    return name if len(name) <= length else name[: length - 1] + "…"


# --- One section per search ------------------------------------------------------------------------


def _face_block(face: ReportFace, styles) -> list:
    head = Table(
        [
            [
                _image(face.crop_jpeg, 13, styles),
                Paragraph(
                    f"<b>Face {face.index}: {text(face.decision or '—')}</b><br/>"
                    f"quality: {text(face.quality or '—')}"
                    + (f" · likely under distance {face.threshold:.3f}" if face.threshold else ""),
                    styles["small"],
                ),
            ]
        ],
        colWidths=[16 * mm, WIDTH - 16 * mm],
    )
    head.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("LEFTPADDING", (0, 0), (-1, -1), 0),
                ("TOPPADDING", (0, 0), (-1, -1), 1),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
            ]
        )
    )
    block = [head]
    if face.candidates:
        rows = [["Rank", "Face", "Candidate", "Distance", "Gallery / legal basis", "Review"]]
        for candidate in face.candidates:
            if candidate.erased:  # the person had their record erased: no name, no face
                who, face_cell, source = "(erased subject)", "—", "—"
            else:
                who, face_cell = text(candidate.display_name), _image(candidate.face_jpeg, 10, styles)
                source = f"{text(candidate.gallery_name)} / {text(candidate.legal_basis)}"
            rows.append(
                [
                    str(candidate.rank),
                    face_cell,
                    Paragraph(who + (" <b>(likely)</b>" if candidate.is_match else ""), styles["small"]),
                    f"{candidate.distance:.3f}",
                    Paragraph(source, styles["small"]),
                    Paragraph(_decision(candidate.review), styles["small"]),
                ]
            )
        block.append(_grid(rows, [10 * mm, 13 * mm, 34 * mm, 14 * mm, 45 * mm, 58 * mm], padding=1))
    if face.not_shown:
        why = (
            "returned for a face too poor to compare reliably"
            if face.low_quality
            else "above the likely-candidate threshold"
        )
        more = f"{face.not_shown} {'more ' if face.candidates else ''}candidate{'s' if face.not_shown != 1 else ''}"
        block.append(Paragraph(f"{more} {why} not shown.", styles["small"]))
    elif not face.candidates:
        block.append(Paragraph("No candidate returned.", styles["small"]))
    block.append(Spacer(1, 1.5 * mm))
    return block


def _edits(search: ReportSearch, styles):
    if not search.edits:
        return Paragraph("No edits: the photo was searched as received.", styles["small"])
    rows = [["#", "Edit", "By", "When", "Hash before → after"]]
    for edit in search.edits:
        rows.append(
            [
                str(edit.number),
                Paragraph(
                    f"{text(edit.operation)}{(' ' + text(edit.parameters)) if edit.parameters else ''}", styles["small"]
                ),
                Paragraph(text(edit.made_by), styles["small"]),
                Paragraph(_when(edit.made_at), styles["small"]),
                Paragraph(f"{text(edit.hash_before)} →<br/>{text(edit.hash_after)}", styles["mono"]),
            ]
        )
    return _grid(rows, [6 * mm, 30 * mm, 16 * mm, 24 * mm, WIDTH - 76 * mm], padding=1)


def _search_section(search: ReportSearch, styles) -> list:
    details = [
        ("Received", Paragraph(f"SHA-256 {text(search.content_hash or '—')}", styles["mono"])),
        (
            "Searched",
            Paragraph(
                f"prepared copy, SHA-256 {text(search.prepared_hash)}"
                if search.prepared_hash
                else "the photo as received",
                styles["mono" if search.prepared_hash else "small"],
            ),
        ),
    ]
    if search.video_line:
        details.append(("Video still", Paragraph(text(search.video_line), styles["small"])))
    details += [
        ("Purpose", Paragraph(f"{text(search.purpose)} — {text(search.justification)}", styles["small"])),
        (
            "Engine",
            Paragraph(
                "<br/>".join(text(line) for line in search.thresholds)
                or f"{text(search.engine)}, likely under {search.threshold:.3f}",
                styles["small"],
            ),
        ),
        ("Faces", Paragraph(text(search.face_choice or "—"), styles["small"])),
        (
            "Result",
            Paragraph(
                f"<b>{text(search.outcome)}</b> · {text(search.status)}"
                + (f", finished {_when(search.finished_at)}" if search.finished_at else ""),
                styles["small"],
            ),
        ),
    ]
    top = Table(
        [[_image(search.probe_jpeg, 26, styles), _pairs(details, styles, label_width=19 * mm, width=WIDTH - 30 * mm)]],
        colWidths=[30 * mm, WIDTH - 30 * mm],
    )
    top.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), 0),
                ("TOPPADDING", (0, 0), (-1, -1), 0),
            ]
        )
    )
    heading = Paragraph(
        f"Search {search.number} · {text(search.photo_name)} · {_when(search.created_at)} by {text(search.started_by)}",
        styles["search"],
    )
    intro = [heading, Spacer(1, 1 * mm), top, _edits(search, styles), Spacer(1, 1.5 * mm)]
    if search.found_no_face:
        intro.append(Paragraph("<b>No face found</b> in the photo: nothing was compared.", styles["small"]))
    elif not search.faces and search.done:
        intro.append(Paragraph("<b>No face searched.</b>", styles["small"]))
    # The heading stays with the probe details and the first face; further faces may flow onto the next page.
    faces = [_face_block(face, styles) for face in search.faces]
    section = [KeepTogether([_Mark(("search", search.number)), *intro, *(faces[0] if faces else [])])]
    for block in faces[1:]:
        section.append(KeepTogether(block))
    section.append(Spacer(1, 4 * mm))
    return section


# --- Sign-off ------------------------------------------------------------------------------------


def _sign_off(contents: CaseReportContents, styles) -> list:
    line = "_" * 34
    rows = [["", "Prepared by", "Reviewed by"]]
    for label in ("Name", "Role", "Signature", "Date"):
        rows.append([label, line, line])
    table = Table(rows, colWidths=[24 * mm, 75 * mm, 75 * mm], rowHeights=[6 * mm] + [10 * mm] * 4)
    table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                ("FONTNAME", (0, 1), (0, -1), "Helvetica-Bold"),
                ("FONTSIZE", (0, 0), (-1, -1), 9),
                ("VALIGN", (0, 0), (-1, -1), "BOTTOM"),
                ("TEXTCOLOR", (1, 1), (-1, -1), colors.HexColor("#6b7280")),
            ]
        )
    )
    return [
        KeepTogether(
            [
                _Mark("signoff"),
                Paragraph("Sign-off", styles["h2"]),
                Paragraph(
                    f"The report was requested by {text(contents.requested_by)} on {_when(contents.requested_at)}. "
                    "By signing, the preparer states that the searches above were made for the purposes given; "
                    "the reviewer, that each confirmed lead was checked by a second person. "
                    + LEADS_STATEMENT.split(". ", 1)[0]
                    + ".",
                    styles["small"],
                ),
                Spacer(1, 2 * mm),
                table,
            ]
        ),
        Spacer(1, 4 * mm),
        Paragraph("Audit entries of this case", styles["h2"]),
        Paragraph(
            f"Entry ids ({len(contents.audit_entry_ids)}): {_id_ranges(contents.audit_entry_ids) or 'none'}",
            styles["small"],
        ),
    ]


def _id_ranges(ids: list[int]) -> str:
    """12, 13, 14, 20 → "12–14, 20": every id referenced, in a line or two."""
    parts, ids = [], sorted(ids)
    start = previous = None
    for value in ids + [None]:
        if start is not None and value == previous + 1:
            previous = value
            continue
        if start is not None:
            parts.append(str(start) if start == previous else f"{start}–{previous}")
        start = previous = value
    return ", ".join(parts)


# --- Building ------------------------------------------------------------------------------------


class _Mark(Flowable):
    """Takes no room; records on which page it was drawn, for the contents on page 1. Placed first inside a
    KeepTogether, so it moves with the block it names."""

    def __init__(self, key):
        super().__init__()
        self.anchor_key = key

    def wrap(self, available_width, available_height):
        return 0, 0

    def draw(self):
        pass


class _ReportDocument(SimpleDocTemplate):
    def __init__(self, *args, pages: dict, **kwargs):
        super().__init__(*args, **kwargs)
        self.found_pages = pages

    def afterFlowable(self, flowable):  # noqa: N802 - reportlab's hook
        key = getattr(flowable, "anchor_key", None)
        if key is not None:
            self.found_pages.setdefault(key, self.page)


def _story(contents: CaseReportContents, styles, pages: dict) -> list:
    story = _summary(contents, styles, pages)
    story.append(PageBreak())  # nothing of the details on page 1
    for search in contents.searches:
        story.extend(_search_section(search, styles))
    if not contents.searches:
        story.append(Paragraph("No search in this case.", styles["body"]))
    story.append(CondPageBreak(70 * mm))
    story.extend(_sign_off(contents, styles))
    return story


def _build(contents: CaseReportContents, pages: dict) -> tuple[bytes, dict]:
    found: dict = {}
    buffer = io.BytesIO()
    document = _ReportDocument(
        buffer,
        pages=found,
        pagesize=A4,
        title=f"Case report {_CONTROL.sub('', contents.case_number)}",
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=14 * mm,
        bottomMargin=16 * mm,
    )
    total = pages.get("total", "…")

    def footer(canvas, doc):
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.drawString(
            18 * mm,
            9 * mm,
            f"Case {_CONTROL.sub('', contents.case_number)} · "
            f"{_CONTROL.sub('', contents.agency_name)} · leads, not identifications · "
            f"report {contents.report_code} · page {doc.page} of {total}",
        )
        canvas.restoreState()

    document.build(_story(contents, _styles(), pages), onFirstPage=footer, onLaterPages=footer)
    found["total"] = document.page
    found.setdefault("searches", 2)
    return buffer.getvalue(), found


def case_report_pdf(contents: CaseReportContents) -> bytes:
    """The PDF of a case report. Built twice: the first pass learns the pages, the second prints them in the
    contents and footers (the numbers take the same lines, so the pages do not move)."""
    _, pages = _build(contents, {})
    pages["searches"] = pages.get(("search", 1), pages["searches"])
    pdf, _ = _build(contents, pages)
    return pdf
