"""What a case report shows, read from the database and the media storage into the layout's dataclasses:
the one place of the report that touches either."""

from __future__ import annotations

import json

from django.core.files.storage import default_storage
from django.utils import timezone

from portal.models import AuditEntry, CaseReport
from portal.reports.layout import (
    CaseReportContents,
    ReportCandidate,
    ReportEdit,
    ReportFace,
    ReportLead,
    ReportReview,
    ReportSearch,
)
from search.comparison import CONCLUSION_LABELS
from search.faces import quality_usable
from search.lineup import clearance_of
from search.models import Candidate, ComparisonRecord, LeadReview, ProbeEdit, SearchJob
from search.open_set import LOW_QUALITY
from search.selectors import ResultFace, candidate_is_match, job_result_faces

# The only places the product writes images; a report embeds nothing else.
_IMAGE_PREFIXES = ("crops/", "probes/", "gallery/")

# Which candidates a report shows: the likely ones and those someone reviewed; the others are counted.
# (An "every candidate" choice would need a field on CaseReport to carry it to the worker; it has none.)
CANDIDATE_RULE = "likely candidates and those with a review; the others are counted"

_FACE_CHOICE = {
    "all": "every face found",
    "usable": "every face of usable quality (all if none is)",
    "chosen": "the faces chosen by the officer",
}


def _image_bytes(field) -> bytes | None:
    """A stored image of the product's own folders, or None (no file, another folder, or gone)."""
    name = field.name if field else ""
    if not name or not name.startswith(_IMAGE_PREFIXES) or ".." in name.split("/") or not default_storage.exists(name):
        return None
    with default_storage.open(name, "rb") as stored:
        return stored.read()


def _conclusions(candidate_ids: list[int]) -> dict[int, dict[str, str]]:
    """Per candidate, the recorded conclusion of each role: {candidate_id: {"proposer": …, "verifier": …}}."""
    found: dict[int, dict[str, str]] = {}
    for record in ComparisonRecord.objects.filter(candidate_id__in=candidate_ids).only(
        "candidate_id", "role", "conclusion"
    ):
        words = CONCLUSION_LABELS.get(record.conclusion, record.conclusion.replace("_", " "))
        found.setdefault(record.candidate_id, {})[record.role] = words
    return found


def _review(candidate: Candidate, conclusions: dict[str, str]) -> ReportReview | None:
    review = getattr(candidate, "review", None)
    if review is None:
        return None
    if review.status == LeadReview.Status.POSSIBLE_LEAD:
        # Verified blind: nothing the proposer concluded or wrote is printed before the second person decides.
        return ReportReview(
            status=review.get_status_display(),
            proposed_by=review.proposed_by.username,
            proposed_at=timezone.localtime(review.proposed_at),
            pending=True,
        )
    return ReportReview(
        status=review.get_status_display(),
        proposed_by=review.proposed_by.username,
        proposed_at=timezone.localtime(review.proposed_at),
        reviewed_by=review.reviewed_by.username if review.reviewed_by else None,
        reviewed_at=timezone.localtime(review.reviewed_at) if review.reviewed_by else None,
        note=review.review_note or review.proposal_note,
        proposer_conclusion=conclusions.get(ComparisonRecord.Role.PROPOSER, ""),
        verifier_conclusion=conclusions.get(ComparisonRecord.Role.VERIFIER, ""),
    )


def _candidate(candidate: Candidate, conclusions: dict) -> ReportCandidate:
    common = {
        "rank": candidate.rank,
        "distance": candidate.distance,
        "is_match": candidate_is_match(candidate),
        "review": _review(candidate, conclusions.get(candidate.id, {})),
    }
    if candidate.erased_at:  # the person had their record erased: nothing of them is read
        return ReportCandidate(erased=True, **common)
    return ReportCandidate(
        display_name=candidate.profile.display_name,
        gallery_name=candidate.profile.gallery.name,
        legal_basis=candidate.profile.gallery.legal_basis,
        face_jpeg=_image_bytes(candidate.face_image.crop),
        **common,
    )


def _quality_words(quality: dict) -> str:
    parts = []
    if quality.get("eye_distance_px") is not None:
        parts.append(f"eye distance {float(quality['eye_distance_px']):.0f} px")
    if quality.get("sharpness") is not None:
        parts.append(f"sharpness {float(quality['sharpness']):.0f}")
    parts.append("usable" if quality_usable(quality) else "below the quality floor")
    return ", ".join(parts)


def _face(face: ResultFace, conclusions: dict) -> ReportFace:
    chosen = [c for c in face.likely_first if candidate_is_match(c) or getattr(c, "review", None) is not None]
    return ReportFace(
        index=face.probe_face.index,
        crop_jpeg=_image_bytes(face.probe_face.crop),
        candidates=[_candidate(candidate, conclusions) for candidate in chosen],
        decision=face.decision_words,
        low_quality=face.decision == LOW_QUALITY,
        quality=_quality_words(face.quality),
        threshold=face.threshold.distance,
        not_shown=len(face.candidates) - len(chosen),
    )


def _thresholds(job: SearchJob) -> list[str]:
    lines = []
    for engine, recorded in sorted((job.thresholds or {}).items()):
        line = f"{engine}: likely under {float(recorded.get('distance', job.threshold)):.3f}"
        version = recorded.get("version")
        line += f", calibration v{version}" if version is not None else ", fixed bound (not calibrated)"
        if recorded.get("gallery_faces"):
            line += f", {recorded['gallery_faces']} gallery faces searched"
        lines.append(line)
    return lines or [f"{job.engine}: likely under {job.threshold:.3f}, fixed bound (not calibrated)"]


def _face_choice(choice: dict) -> str:
    words = _FACE_CHOICE.get(choice.get("mode", "all"), str(choice.get("mode", "")))
    if "found" in choice and "searched" in choice:
        words += f" — {choice['found']} found, {choice['searched']} searched"
    return words


def _edit(edit: ProbeEdit) -> ReportEdit:
    parameters = ", ".join(f"{key} {json.dumps(value)}" for key, value in sorted((edit.parameters or {}).items()))
    return ReportEdit(
        number=edit.number,
        operation=edit.get_operation_display(),
        parameters=parameters,
        made_by=edit.made_by.username,
        made_at=timezone.localtime(edit.created_at),
        hash_before=edit.hash_before,
        hash_after=edit.hash_after,
    )


def _video_line(probe) -> str:
    if not probe.video_hash:
        return ""
    seconds = (probe.frame_time_ms or 0) / 1000
    return f"still at {int(seconds // 60):02d}:{seconds % 60:06.3f} of a video, SHA-256 {probe.video_hash}"


def _search(number: int, job: SearchJob, faces: list[ResultFace], conclusions: dict) -> ReportSearch:
    probe = job.probe
    return ReportSearch(
        number=number,
        photo_name=probe.original_name or "probe photo",
        probe_jpeg=_image_bytes(probe.searched_image),
        content_hash=probe.content_hash,
        prepared_hash=probe.prepared_hash,
        edits=[_edit(edit) for edit in probe.edits.select_related("made_by").order_by("number")],
        video_line=_video_line(probe),
        created_at=timezone.localtime(job.created_at),
        finished_at=timezone.localtime(job.finished_at) if job.finished_at else None,
        started_by=job.started_by.username,
        purpose=job.offense_category.name if job.offense_category else "—",
        justification=job.justification or "—",
        status=job.get_status_display(),
        error=job.error,
        found_no_face=job.found_no_face,
        done=job.status == SearchJob.Status.DONE,
        engine=job.engine,
        threshold=job.threshold,
        thresholds=_thresholds(job),
        face_choice=_face_choice(job.face_choice or {}),
        faces=[_face(face, conclusions) for face in faces],
    )


def case_report_contents(*, report: CaseReport) -> CaseReportContents:
    """The case, its searches (oldest first) with faces and candidates, its confirmed leads and audit ids."""
    case = report.case
    jobs = list(
        SearchJob.objects.filter(probe__case=case, agency_id=case.agency_id)
        .select_related("probe", "started_by", "offense_category")
        .order_by("created_at")
    )
    faces = {job.id: job_result_faces(job=job) for job in jobs}
    conclusions = _conclusions([c.id for job_faces in faces.values() for face in job_faces for c in face.candidates])
    numbers = {job.id: number for number, job in enumerate(jobs, start=1)}
    reviews = LeadReview.objects.filter(candidate__job__probe__case=case, candidate__job__agency_id=case.agency_id)
    leads = reviews.filter(status=LeadReview.Status.CONFIRMED).select_related(
        "candidate__profile", "candidate__face_image", "candidate__probe_face", "proposed_by", "reviewed_by"
    )
    return CaseReportContents(
        report_code=str(report.code),
        case_number=case.number,
        case_title=case.title,
        agency_name=case.agency.name,
        case_status=case.get_status_display(),
        opened_at=timezone.localtime(case.created_at),
        opened_by=case.created_by.username,
        requested_by=report.requested_by.username,
        requested_at=timezone.localtime(report.created_at),
        generated_at=timezone.localtime(timezone.now()),
        candidate_rule=CANDIDATE_RULE,
        searches=[_search(numbers[job.id], job, faces[job.id], conclusions) for job in jobs],
        leads=[_lead(lead, numbers, conclusions) for lead in leads.order_by("reviewed_at")],
        pending_leads=reviews.filter(status=LeadReview.Status.POSSIBLE_LEAD).count(),
        audit_entry_ids=list(AuditEntry.objects.filter(case=case).order_by("id").values_list("id", flat=True)),
    )


def _lead(lead: LeadReview, numbers: dict, conclusions: dict) -> ReportLead:
    candidate = lead.candidate
    erased = candidate.erased_at is not None or candidate.profile is None
    recorded = conclusions.get(candidate.id, {})
    if not recorded:  # a lead of a candidate the searches above do not list (none today): read it here
        recorded = _conclusions([candidate.id]).get(candidate.id, {})
    return ReportLead(
        display_name=None if erased else candidate.profile.display_name,
        proposed_by=lead.proposed_by.username,
        proposed_at=timezone.localtime(lead.proposed_at),
        reviewed_by=lead.reviewed_by.username,
        reviewed_at=timezone.localtime(lead.reviewed_at),
        distance=candidate.distance,
        search_number=numbers.get(candidate.job_id, 0),
        face_index=candidate.probe_face.index,
        probe_crop_jpeg=_image_bytes(candidate.probe_face.crop),
        candidate_jpeg=None if erased or candidate.face_image is None else _image_bytes(candidate.face_image.crop),
        proposer_conclusion=recorded.get(ComparisonRecord.Role.PROPOSER, ""),
        verifier_conclusion=recorded.get(ComparisonRecord.Role.VERIFIER, ""),
        identification_procedures=clearance_of(lead).sentence,
    )
