"""The examiner's desk: comparing a probe face with a candidate, the comparison records, the two-person verdict."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from accounts.models import Role
from portal.access import agency_member_required, audit_view
from portal.client_address import client_address
from portal.models import AuditEntry
from search import leads as reviews
from search import selectors
from search.models import LeadReview


@require_safe
@agency_member_required
def candidate_compare(request, code, face, rank):
    candidate = selectors.candidate_get(user=request.user, job_code=code, face_index=face, rank=rank)
    siblings = list(
        selectors.search_job_candidates(job=candidate.job)
        .filter(probe_face=candidate.probe_face)
        .values_list("rank", flat=True)
    )
    position = siblings.index(candidate.rank)

    def url(r):
        return reverse("search:candidate-compare", kwargs={"code": code, "face": face, "rank": r})

    audit_view(
        request,
        AuditEntry.Action.COMPARISON_VIEWED,
        case=candidate.job.probe.case,
        target=candidate,
        data={"profile_id": candidate.profile_id},
    )
    review = getattr(candidate, "review", None)
    return render(
        request,
        "search/compare.html",
        {
            "candidate": candidate,
            "job": candidate.job,
            "review": review,
            "previous_url": url(siblings[position - 1]) if position > 0 else None,
            "next_url": url(siblings[position + 1]) if position + 1 < len(siblings) else None,
            "count": len(siblings),
            "can_mark": review is None
            or (
                review.proposed_by_id == request.user.id
                and review.status in (LeadReview.Status.POSSIBLE_LEAD, LeadReview.Status.EXCLUDED)
            ),
            "can_decide": (
                review is not None
                and review.status == LeadReview.Status.POSSIBLE_LEAD
                and request.user.role == Role.SUPERVISOR
                and review.proposed_by_id != request.user.id
            ),
        },
    )


@agency_member_required
@require_POST
def candidate_mark(request, code, face, rank):
    candidate = selectors.candidate_get(user=request.user, job_code=code, face_index=face, rank=rank)
    try:
        reviews.candidate_mark(
            user=request.user,
            candidate=candidate,
            decision=request.POST.get("decision", ""),
            note=request.POST.get("note", ""),
            ip_address=client_address(request),
        )
    except reviews.ReviewRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            "Your decision is recorded."
            if request.POST.get("decision") == "excluded"
            else "Proposed as a possible lead: a supervisor must confirm it before it is a lead.",
        )
    return redirect("search:candidate-compare", code=code, face=face, rank=rank)


@agency_member_required
@require_POST
def lead_decide(request, code, face, rank):
    candidate = selectors.candidate_get(user=request.user, job_code=code, face_index=face, rank=rank)
    confirm = request.POST.get("decision") == "confirm"
    try:
        reviews.lead_decide(
            user=request.user,
            candidate=candidate,
            confirm=confirm,
            note=request.POST.get("note", ""),
            ip_address=client_address(request),
        )
    except reviews.ReviewRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Lead confirmed by a second person." if confirm else "Lead rejected.")
    return redirect("search:candidate-compare", code=code, face=face, rank=rank)
