"""Writes for the two-person verification of candidates, each with its structured comparison record.

The first person (an officer, or a supervisor proposing) records a comparison as part of marking a
candidate; the second (a supervisor, not the proposer) records theirs blind, then confirms or rejects. The
records' rules (the feature list, the scale, who may see what) are in search/comparison.py.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.models import Role, User
from portal.audit import audit_record
from portal.models import AuditEntry
from search import comparison
from search.models import Candidate, ComparisonRecord, LeadReview


class ReviewRefused(ValueError):
    """A review decision that is not allowed, with the reason."""


class ComparisonErrors(ReviewRefused):
    """A comparison record the examiner must complete or correct: field name → message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(" ".join(errors.values()))
        self.errors = errors


# The conclusions each decision of the first person needs, and what to say otherwise.
CONCLUSIONS_FOR_DECISION = {
    LeadReview.Status.POSSIBLE_LEAD: (
        comparison.SUPPORTING,
        "A possible lead needs a conclusion that supports it (strongly supports or supports).",
    ),
    LeadReview.Status.EXCLUDED: (
        comparison.NOT_SUPPORTING,
        "Excluding needs a conclusion of inconclusive, does not support or excluded.",
    ),
}


def _check_agency(user: User, candidate: Candidate) -> None:
    if user.agency_id is None or user.agency_id != candidate.job.agency_id:
        raise ReviewRefused("Only users of the searching agency review its candidates.")


def _check_complete(
    entry: comparison.ComparisonEntry, *, conclusions: frozenset[str] | None = None, conclusion_error: str = ""
) -> None:
    """Every feature and the conclusion given, and the conclusion one of `conclusions` when they are named."""
    errors = entry.errors()
    if conclusions is not None and entry.conclusion and entry.conclusion not in conclusions:
        errors["conclusion"] = conclusion_error
    if errors:
        raise ComparisonErrors(errors)


def _record(
    *, user: User, candidate: Candidate, role: str, entry: comparison.ComparisonEntry, ip_address: str | None
) -> ComparisonRecord:
    record, _ = ComparisonRecord.objects.update_or_create(
        candidate=candidate,
        role=role,
        defaults={
            "examiner": user,
            "features": dict(entry.features),
            "conclusion": entry.conclusion,
            "notes": entry.notes,
            "created_at": timezone.now(),
        },
    )
    audit_record(
        action=AuditEntry.Action.COMPARISON_RECORDED,
        actor=user,
        case=candidate.job.probe.case,
        target=candidate,
        ip_address=ip_address,
        detail=entry.notes,
        data={
            "role": role,
            "conclusion": entry.conclusion,
            "features": dict(entry.features),
            "profile_id": candidate.profile_id,
            "job": str(candidate.job.code),
        },
    )
    return record


@transaction.atomic
def candidate_mark(
    *,
    user: User,
    candidate: Candidate,
    decision: str,
    comparison_entry: comparison.ComparisonEntry,
    ip_address: str | None = None,
) -> LeadReview:
    """The first person's decision with their comparison record: a possible lead (the record supports a lead),
    or excluded (it does not). The record's notes are the proposal's note. Unmarked candidates block nothing."""
    _check_agency(user, candidate)
    if decision not in CONCLUSIONS_FOR_DECISION:
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
    verifier = candidate.comparison_records.filter(role=ComparisonRecord.Role.VERIFIER).first()
    if verifier is not None:
        # The verifier compared against this record: changing it now would make their blind record moot.
        raise ReviewRefused(
            f"{verifier.examiner.username} has recorded their verification; your record stays as it was."
        )
    conclusions, conclusion_error = CONCLUSIONS_FOR_DECISION[decision]
    _check_complete(comparison_entry, conclusions=conclusions, conclusion_error=conclusion_error)
    review = review or LeadReview(candidate=candidate)
    review.status, review.proposed_by, review.proposed_at, review.proposal_note = (
        decision,
        user,
        timezone.now(),
        comparison_entry.notes,
    )
    review.save()
    _record(
        user=user,
        candidate=candidate,
        role=ComparisonRecord.Role.PROPOSER,
        entry=comparison_entry,
        ip_address=ip_address,
    )
    audit_record(
        action=AuditEntry.Action.LEAD_PROPOSED
        if decision == LeadReview.Status.POSSIBLE_LEAD
        else AuditEntry.Action.CANDIDATE_EXCLUDED,
        actor=user,
        case=candidate.job.probe.case,
        target=candidate,
        ip_address=ip_address,
        detail=comparison_entry.notes,
        data={
            "job": str(candidate.job.code),
            "profile_id": candidate.profile_id,
            "rank": candidate.rank,
            "distance": round(candidate.distance, 4),
            "conclusion": comparison_entry.conclusion,
        },
    )
    return review


def _waiting_review(user: User, candidate: Candidate) -> LeadReview:
    """The proposal a supervisor, not its proposer, may verify and decide (locked for the write)."""
    _check_agency(user, candidate)
    if user.role != Role.SUPERVISOR:
        raise ReviewRefused("Only a supervisor confirms or rejects a lead.")
    review = LeadReview.objects.select_for_update().filter(candidate=candidate).first()
    if review is None or review.status != LeadReview.Status.POSSIBLE_LEAD:
        raise ReviewRefused("Only a candidate proposed as a possible lead can be confirmed or rejected.")
    if review.proposed_by_id == user.id:
        raise ReviewRefused("Nobody confirms their own proposal: a second person must review it.")
    return review


@transaction.atomic
def lead_verify(
    *, user: User, candidate: Candidate, comparison_entry: comparison.ComparisonEntry, ip_address: str | None = None
) -> ComparisonRecord:
    """The second person's own comparison of a proposed lead, recorded before they may see the first's."""
    _waiting_review(user, candidate)
    verifier = candidate.comparison_records.filter(role=ComparisonRecord.Role.VERIFIER).first()
    if verifier is not None:
        raise ReviewRefused(
            "You have recorded your comparison; it stays as recorded."
            if verifier.examiner_id == user.id
            else f"{verifier.examiner.username} is already verifying this proposal."
        )
    _check_complete(comparison_entry)  # any conclusion of the scale: the verifier's own
    return _record(
        user=user,
        candidate=candidate,
        role=ComparisonRecord.Role.VERIFIER,
        entry=comparison_entry,
        ip_address=ip_address,
    )


@transaction.atomic
def lead_decide(
    *, user: User, candidate: Candidate, confirm: bool, note: str = "", ip_address: str | None = None
) -> LeadReview:
    """The second person's decision on a possible lead, after their own blind comparison record: confirm it
    (their conclusion supports a lead), or reject it with a reason."""
    review = _waiting_review(user, candidate)
    records = {record.role: record for record in candidate.comparison_records.all()}
    mine = records.get(ComparisonRecord.Role.VERIFIER)
    if mine is None or mine.examiner_id != user.id:
        raise ReviewRefused(
            "Record your own comparison and conclusion before you confirm or reject: verification is blind."
        )
    if confirm and mine.conclusion not in comparison.SUPPORTING:
        raise ReviewRefused(
            f"Your conclusion ({comparison.CONCLUSION_LABELS[mine.conclusion].lower()}) does not support a lead: "
            "it cannot be confirmed. Reject it with a reason."
        )
    if not confirm and not note.strip():
        raise ReviewRefused("Give the reason for rejecting the lead.")
    review.status = LeadReview.Status.CONFIRMED if confirm else LeadReview.Status.REJECTED
    review.reviewed_by, review.reviewed_at, review.review_note = user, timezone.now(), note.strip()
    review.save()
    first = records.get(ComparisonRecord.Role.PROPOSER)
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
            "proposer_conclusion": first.conclusion if first else "",
            "verifier_conclusion": mine.conclusion,
        },
    )
    return review
