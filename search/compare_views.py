"""The examiner's desk: comparing a probe face with a candidate, the comparison records, the two-person verdict."""

from __future__ import annotations

import json

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from accounts.models import Role
from portal.access import agency_member_required, audit_view
from portal.client_address import client_address
from portal.models import AuditEntry
from search import comparison, lineup, selectors
from search import leads as reviews
from search.models import Candidate, ComparisonRecord, LeadReview


def _photo(face_image) -> dict:
    """What a viewport needs of a gallery photo: its image, aligned crop, face box and landmark points."""
    return {
        "code": str(face_image.code),
        "url": reverse("search:face-photo", args=[face_image.code]),
        "crop_url": reverse("search:face-crop", args=[face_image.code]),
        "box": json.dumps(face_image.box),
        "points": json.dumps(comparison.landmark_points(face_image.landmarks, face_image.engine)),
        "source": face_image.source_name or "",
    }


def _compare_context(request, candidate: Candidate, *, entry=None, errors=None) -> dict:
    job, user = candidate.job, request.user
    siblings = list(
        selectors.search_job_candidates(job=job).filter(probe_face=candidate.probe_face).values_list("rank", flat=True)
    )
    position = siblings.index(candidate.rank)

    def url(rank):
        return reverse(
            "search:candidate-compare", kwargs={"code": job.code, "face": candidate.probe_face.index, "rank": rank}
        )

    review = getattr(candidate, "review", None)
    records = comparison.comparison_records_for([candidate.id]).get(candidate.id, {})
    shown = comparison.records_shown(user=user, review=review, records=records)
    waiting = review is not None and review.status == LeadReview.Status.POSSIBLE_LEAD
    may_verify = waiting and user.role == Role.SUPERVISOR and review.proposed_by_id != user.id
    can_mark = (
        review is None
        or (
            review.proposed_by_id == user.id
            and review.status in (LeadReview.Status.POSSIBLE_LEAD, LeadReview.Status.EXCLUDED)
        )
    ) and ComparisonRecord.Role.VERIFIER not in records
    can_record = may_verify and ComparisonRecord.Role.VERIFIER not in records
    if entry is None and can_mark and shown.mine is not None:
        entry = comparison.comparison_entry_of(shown.mine)  # the proposer revises their own record
    probe, probe_face = job.probe, candidate.probe_face
    context = {
        "candidate": candidate,
        "job": job,
        "review": review,
        "records": shown,
        "previous_url": url(siblings[position - 1]) if position > 0 else None,
        "next_url": url(siblings[position + 1]) if position + 1 < len(siblings) else None,
        "count": len(siblings),
        "can_mark": can_mark,
        "can_record": can_record,
        "can_decide": may_verify and shown.mine is not None,
        "form": comparison.ComparisonForm.of(entry, errors) if can_mark or can_record else None,
        "form_errors": errors or {},
    }
    if review is not None and review.status == LeadReview.Status.CONFIRMED:
        # The lineup gate: cleared for identification procedures or, plainly, not (search/lineup.py).
        context["clearance"] = lineup.clearance_of(review)
        context["may_record_evidence"] = lineup.may_record_evidence(user=user, review=review)
        context["may_clear"] = lineup.may_clear(user=user, review=review)
    if candidate.face_image is not None:
        context["probe_photo"] = {
            "url": reverse("search:probe-image", args=[probe.code]) if probe.searched_image else "",
            "crop_url": reverse("search:probe-face-crop", args=[job.code, probe_face.index]),
            "box": json.dumps(probe_face.box),
            "points": json.dumps(comparison.landmark_points(probe_face.landmarks, probe_face.engine)),
        }
        context["photos"] = [_photo(face_image) for face_image in comparison.profile_photos(candidate)]
    return context


def _render_compare(request, candidate: Candidate, context: dict, *, status: int = 200):
    audit_view(
        request,
        AuditEntry.Action.COMPARISON_VIEWED,
        case=candidate.job.probe.case,
        target=candidate,
        data={
            "profile_id": candidate.profile_id,
            # Blind verification, on the record: whether this page showed the first examiner's record.
            "first_record_shown": context["records"].first is not None,
        },
    )
    return render(request, "search/compare.html", context, status=status)


def _render_errors(request, candidate: Candidate, entry, errors: dict):
    messages.error(request, "Your record is not complete: see the marked fields.")
    context = _compare_context(request, candidate, entry=entry, errors=errors)
    return _render_compare(request, candidate, context, status=400)


def _refused(request, candidate: Candidate, *, status: int, title: str, message: str):
    """A refusal page with no photo and no record on it (so no audit entry of a view either)."""
    return render(
        request,
        "search/_comparison_refused.html",
        {"candidate": candidate, "job": candidate.job, "title": title, "message": message},
        status=status,
    )


@require_safe
@agency_member_required
def candidate_compare(request, code, face, rank):
    candidate = selectors.candidate_get(user=request.user, job_code=code, face_index=face, rank=rank)
    context = _compare_context(request, candidate)
    if request.GET.get("records") == "first" and context["records"].hidden:
        # The first examiner's record, asked for by name: refused, before anything is shown or audited, to
        # whoever must not see it yet (a verifier who has not recorded theirs).
        return _refused(
            request,
            candidate,
            status=403,
            title="The first examiner's record is hidden",
            message=context["records"].hidden,
        )
    return _render_compare(request, candidate, context)


def _entry_or_refusal(request, candidate: Candidate):
    try:
        return comparison.comparison_from_form(request.POST), None
    except comparison.ComparisonInvalid as exc:
        return None, _refused(
            request,
            candidate,
            status=400,
            title="This comparison form is not one of ours",
            message=f"{exc} Nothing was recorded: reload the comparison and fill in its form.",
        )


@agency_member_required
@require_POST
def candidate_mark(request, code, face, rank):
    """The first person's decision (possible lead or excluded) with their structured comparison record."""
    candidate = selectors.candidate_get(user=request.user, job_code=code, face_index=face, rank=rank)
    entry, refusal = _entry_or_refusal(request, candidate)
    if refusal:
        return refusal
    decision = request.POST.get("decision", "")
    try:
        reviews.candidate_mark(
            user=request.user,
            candidate=candidate,
            decision=decision,
            comparison_entry=entry,
            ip_address=client_address(request),
        )
    except reviews.ComparisonErrors as exc:
        return _render_errors(request, candidate, entry, exc.errors)
    except reviews.ReviewRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            "Your comparison and decision are recorded."
            if decision == LeadReview.Status.EXCLUDED
            else "Proposed as a possible lead: a supervisor must verify it blind and confirm it before it is a lead.",
        )
    return redirect("search:candidate-compare", code=code, face=face, rank=rank)


def _verify(request, candidate: Candidate):
    entry, refusal = _entry_or_refusal(request, candidate)
    if refusal:
        return refusal
    try:
        reviews.lead_verify(
            user=request.user, candidate=candidate, comparison_entry=entry, ip_address=client_address(request)
        )
    except reviews.ComparisonErrors as exc:
        return _render_errors(request, candidate, entry, exc.errors)
    except reviews.ReviewRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Your comparison is recorded. The first examiner's record is now shown beside it.")
    return None


@agency_member_required
@require_POST
def lead_decide(request, code, face, rank):
    """The second person: their own comparison recorded blind (decision=record), then confirm or reject."""
    candidate = selectors.candidate_get(user=request.user, job_code=code, face_index=face, rank=rank)
    decision = request.POST.get("decision")
    if decision == "record":
        response = _verify(request, candidate)
        if response:
            return response
    elif decision in ("confirm", "reject"):
        try:
            reviews.lead_decide(
                user=request.user,
                candidate=candidate,
                confirm=decision == "confirm",
                note=request.POST.get("note", ""),
                ip_address=client_address(request),
            )
        except reviews.ReviewRefused as exc:
            messages.error(request, str(exc))
        else:
            messages.success(
                request, "Lead confirmed by a second person." if decision == "confirm" else "Lead rejected."
            )
    else:
        messages.error(request, "Record your comparison, confirm or reject.")
    return redirect("search:candidate-compare", code=code, face=face, rank=rank)
