"""What a case report shows, read from the database and the media storage into the layout's dataclasses:
the one place of the report that touches either."""

from __future__ import annotations

from django.core.files.storage import default_storage
from django.utils import timezone

from portal.models import AuditEntry, CaseReport
from portal.reports.layout import (
    CaseReportContents,
    ReportCandidate,
    ReportFace,
    ReportLead,
    ReportReview,
    ReportSearch,
)
from search.models import Candidate, LeadReview, SearchJob
from search.selectors import candidate_is_match, job_result_faces

# The only places the product writes images; a report embeds nothing else.
_IMAGE_PREFIXES = ("crops/", "probes/", "gallery/")


def _image_bytes(field) -> bytes | None:
    """A stored image of the product's own folders, or None (no file, another folder, or gone)."""
    name = field.name if field else ""
    if not name or not name.startswith(_IMAGE_PREFIXES) or ".." in name.split("/") or not default_storage.exists(name):
        return None
    with default_storage.open(name, "rb") as stored:
        return stored.read()


def _review(candidate: Candidate) -> ReportReview | None:
    review = getattr(candidate, "review", None)
    if review is None:
        return None
    return ReportReview(
        status=review.get_status_display(),
        proposed_by=review.proposed_by.username,
        proposed_at=timezone.localtime(review.proposed_at),
        reviewed_by=review.reviewed_by.username if review.reviewed_by else None,
        reviewed_at=timezone.localtime(review.reviewed_at) if review.reviewed_by else None,
        note=review.review_note or review.proposal_note,
    )


def _candidate(candidate: Candidate) -> ReportCandidate:
    common = {
        "rank": candidate.rank,
        "distance": candidate.distance,
        "is_match": candidate_is_match(candidate),
        "review": _review(candidate),
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


def _search(job: SearchJob) -> ReportSearch:
    faces = [
        ReportFace(
            index=face.probe_face.index,
            crop_jpeg=_image_bytes(face.probe_face.crop),
            candidates=[_candidate(candidate) for candidate in face.candidates],
            decision=face.decision_words,
            threshold=face.threshold.distance,
        )
        for face in job_result_faces(job=job)
    ]
    return ReportSearch(
        photo_name=job.probe.original_name or "probe photo",
        created_at=timezone.localtime(job.created_at),
        started_by=job.started_by.username,
        purpose=job.offense_category.name if job.offense_category else "—",
        justification=job.justification or "—",
        status=job.get_status_display(),
        error=job.error,
        engine=job.engine,
        threshold=job.threshold,
        faces=faces,
    )


def case_report_contents(*, report: CaseReport) -> CaseReportContents:
    """The case, its searches (oldest first) with faces and candidates, its confirmed leads and audit ids."""
    case = report.case
    jobs = (
        SearchJob.objects.filter(probe__case=case, agency_id=case.agency_id)
        .select_related("probe", "started_by", "offense_category")
        .order_by("created_at")
    )
    leads = LeadReview.objects.filter(
        candidate__job__probe__case=case, status=LeadReview.Status.CONFIRMED
    ).select_related("candidate__profile", "proposed_by", "reviewed_by")
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
        searches=[_search(job) for job in jobs],
        leads=[
            ReportLead(
                display_name=lead.candidate.profile.display_name if lead.candidate.profile else None,
                proposed_by=lead.proposed_by.username,
                proposed_at=timezone.localtime(lead.proposed_at),
                reviewed_by=lead.reviewed_by.username,
                reviewed_at=timezone.localtime(lead.reviewed_at),
            )
            for lead in leads
        ],
        audit_entry_ids=list(AuditEntry.objects.filter(case=case).order_by("id").values_list("id", flat=True)),
    )
