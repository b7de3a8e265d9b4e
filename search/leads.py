"""Writes for the two-person verification of candidates."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.models import Role, User
from portal.audit import audit_record
from portal.models import AuditEntry
from search.models import Candidate, LeadReview


class ReviewRefused(ValueError):
    """A review decision that is not allowed, with the reason."""


def _check_agency(user: User, candidate: Candidate) -> None:
    if user.agency_id is None or user.agency_id != candidate.job.agency_id:
        raise ReviewRefused("Only users of the searching agency review its candidates.")


@transaction.atomic
def candidate_mark(
    *, user: User, candidate: Candidate, decision: str, note: str = "", ip_address: str | None = None
) -> LeadReview:
    """The first person's decision: a possible lead, or excluded. Unmarked candidates block nothing."""
    _check_agency(user, candidate)
    if decision not in (LeadReview.Status.POSSIBLE_LEAD, LeadReview.Status.EXCLUDED):
        raise ReviewRefused("Mark a candidate as a possible lead or exclude it.")
    review = LeadReview.objects.select_for_update().filter(candidate=candidate).first()
    if review and review.status in (LeadReview.Status.CONFIRMED, LeadReview.Status.REJECTED):
        raise ReviewRefused(
            f"This candidate was already reviewed by {review.reviewed_by.username}: "
            f"{review.get_status_display().lower()}."
        )
    if review and review.proposed_by_id != user.id:
        # A proposal belongs to its author: another officer neither overwrites nor withdraws it; the
        # supervisor's confirmation or rejection is the second person's say.
        raise ReviewRefused(
            f"{review.proposed_by.username} already marked this candidate "
            f"({review.get_status_display().lower()}); only they can change their decision, and a "
            "supervisor confirms or rejects a proposal."
        )
    review = review or LeadReview(candidate=candidate)
    review.status, review.proposed_by, review.proposed_at, review.proposal_note = (
        decision,
        user,
        timezone.now(),
        note.strip(),
    )
    review.save()
    audit_record(
        action=AuditEntry.Action.LEAD_PROPOSED
        if decision == LeadReview.Status.POSSIBLE_LEAD
        else AuditEntry.Action.CANDIDATE_EXCLUDED,
        actor=user,
        case=candidate.job.probe.case,
        target=candidate,
        ip_address=ip_address,
        detail=note.strip(),
        data={
            "job": str(candidate.job.code),
            "profile_id": candidate.profile_id,
            "rank": candidate.rank,
            "distance": round(candidate.distance, 4),
        },
    )
    return review


@transaction.atomic
def lead_decide(
    *, user: User, candidate: Candidate, confirm: bool, note: str = "", ip_address: str | None = None
) -> LeadReview:
    """The second person's decision on a possible lead: confirm it, or reject it with a reason."""
    _check_agency(user, candidate)
    if user.role != Role.SUPERVISOR:
        raise ReviewRefused("Only a supervisor confirms or rejects a lead.")
    review = LeadReview.objects.select_for_update().filter(candidate=candidate).first()
    if review is None or review.status != LeadReview.Status.POSSIBLE_LEAD:
        raise ReviewRefused("Only a candidate proposed as a possible lead can be confirmed or rejected.")
    if review.proposed_by_id == user.id:
        raise ReviewRefused("Nobody confirms their own proposal: a second person must review it.")
    if not confirm and not note.strip():
        raise ReviewRefused("Give the reason for rejecting the lead.")
    review.status = LeadReview.Status.CONFIRMED if confirm else LeadReview.Status.REJECTED
    review.reviewed_by, review.reviewed_at, review.review_note = user, timezone.now(), note.strip()
    review.save()
    audit_record(
        action=AuditEntry.Action.LEAD_CONFIRMED if confirm else AuditEntry.Action.LEAD_REJECTED,
        actor=user,
        case=candidate.job.probe.case,
        target=candidate,
        ip_address=ip_address,
        detail=note.strip(),
        data={
            "proposed_by": review.proposed_by.username,
            "profile_id": candidate.profile_id,
            "job": str(candidate.job.code),
        },
    )
    return review
