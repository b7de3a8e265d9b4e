"""The lineup gate: a confirmed lead is cleared for identification procedures (a lineup, an arrest request)
only after independent evidence — what, by whom, when, and not the face search — is recorded and a supervisor
clears it. Until then every page, report and API answer says plainly that it is not (docs/lineup-gate.md).

Writes (recording evidence, clearing) audit in their own transaction; the reads at the end give every output
the same words.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_date

from accounts.models import Role, User
from portal.audit import audit_record
from portal.models import AuditEntry
from search.models import IndependentEvidence, LeadReview

NOT_CLEARED = (
    "Not cleared for identification procedures: no lineup or arrest request on this lead until independent "
    "evidence is recorded and a supervisor clears it."
)
# What the person recording evidence states on the form (the API asks for the same as a field).
INDEPENDENCE_STATEMENT = "This evidence was obtained independently of the face search"
MIN_DESCRIPTION = 20
# Who records evidence: the investigators of the agency. Clearing is a supervisor's alone.
RECORDERS = (Role.OFFICER, Role.SUPERVISOR)
KIND_LABELS = dict(IndependentEvidence.Kind.choices)


class ClearanceRefused(ValueError):
    """A lineup-gate write that is not allowed, with the reason."""


class EvidenceErrors(ClearanceRefused):
    """An evidence record to complete or correct: field name → message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(" ".join(errors.values()))
        self.errors = errors


def _person(user: User | None) -> str:
    if user is None:
        return "—"
    full = user.get_full_name().strip()
    return f"{full} ({user.username})" if full else user.username


def _locked_confirmed(review: LeadReview, user: User) -> LeadReview:
    """The review row, locked for the write, checked: the user's agency, a confirmed lead, a person still held."""
    candidate = review.candidate
    if user.agency_id is None or user.agency_id != candidate.job.agency_id:
        raise ClearanceRefused("Only users of the searching agency act on its leads.")
    locked = LeadReview.objects.select_for_update().select_related("candidate").get(pk=review.pk)
    if locked.status != LeadReview.Status.CONFIRMED:
        raise ClearanceRefused(
            "Only a confirmed lead (proposed by one person, confirmed by a second) takes independent evidence "
            f"or a clearance; this one is {locked.get_status_display().lower()}."
        )
    if locked.candidate.erased_at is not None:
        raise ClearanceRefused("This candidate was erased: nothing more is recorded about them.")
    return locked


def _obtained_on(value) -> tuple[datetime.date | None, str]:
    """The date the evidence was obtained, or the reason it is not one."""
    if isinstance(value, datetime.datetime):
        value = value.date()
    if isinstance(value, datetime.date):
        day = value
    else:
        text = str(value or "").strip()
        if not text:
            return None, "Give the date the evidence was obtained."
        try:
            day = parse_date(text)
        except ValueError:
            day = None
        if day is None:
            return None, "Give the date the evidence was obtained as a real date (YYYY-MM-DD)."
    if day > timezone.localdate():
        return None, "The date the evidence was obtained cannot be in the future."
    return day, ""


def _evidence_errors(*, kind: str, description: str, obtained_by: str, obtained_on) -> tuple[dict, object]:
    errors: dict[str, str] = {}
    if kind == "face_search" or "face" in (kind or "").lower():
        errors["kind"] = "The face search is not independent evidence: record evidence obtained another way."
    elif kind not in KIND_LABELS:
        errors["kind"] = "Choose the kind of evidence: " + ", ".join(KIND_LABELS) + "."
    if len(description.strip()) < MIN_DESCRIPTION:
        errors["description"] = f"Describe the evidence and what it shows in at least {MIN_DESCRIPTION} characters."
    if not obtained_by.strip():
        errors["obtained_by"] = "Say who obtained the evidence."
    elif len(obtained_by.strip()) > 200:
        errors["obtained_by"] = "Who obtained it: at most 200 characters."
    day, problem = _obtained_on(obtained_on)
    if problem:
        errors["obtained_on"] = problem
    return errors, day


@transaction.atomic
def evidence_record(
    *,
    review: LeadReview,
    user: User,
    kind: str,
    description: str,
    obtained_by: str,
    obtained_on,
    ip_address: str | None = None,
) -> IndependentEvidence:
    """Record evidence linking a confirmed lead to the case that is not the face search (an officer or a
    supervisor of the agency). `obtained_on` is a date or its ISO text."""
    locked = _locked_confirmed(review, user)
    if user.role not in RECORDERS:
        raise ClearanceRefused("Independent evidence is recorded by the agency's officers and supervisors.")
    kind, description, obtained_by = (kind or "").strip(), description or "", obtained_by or ""
    errors, day = _evidence_errors(kind=kind, description=description, obtained_by=obtained_by, obtained_on=obtained_on)
    if errors:
        raise EvidenceErrors(errors)
    evidence = IndependentEvidence.objects.create(
        review=locked,
        kind=kind,
        description=description.strip(),
        obtained_by=obtained_by.strip(),
        obtained_on=day,
        recorded_by=user,
        recorded_at=timezone.now(),
    )
    candidate = locked.candidate
    audit_record(
        action=AuditEntry.Action.EVIDENCE_RECORDED,
        actor=user,
        case=candidate.job.probe.case,
        target=candidate,
        ip_address=ip_address,
        detail=f"{KIND_LABELS[kind]}: {evidence.description}",
        data={
            "evidence": str(evidence.code),
            "kind": kind,
            "obtained_by": evidence.obtained_by,
            "obtained_on": day.isoformat(),
            "job": str(candidate.job.code),
            "profile_id": candidate.profile_id,
        },
    )
    return evidence


@transaction.atomic
def lead_clear(*, review: LeadReview, user: User, note: str, ip_address: str | None = None) -> LeadReview:
    """A supervisor clears a confirmed lead for identification procedures, once, on the independent evidence
    recorded for it."""
    locked = _locked_confirmed(review, user)
    if user.role != Role.SUPERVISOR:
        raise ClearanceRefused("Only a supervisor clears a lead for identification procedures.")
    if locked.cleared_at is not None:
        raise ClearanceRefused(
            f"This lead was already cleared by {locked.cleared_by.username} on "
            f"{timezone.localtime(locked.cleared_at):%d %b %Y}."
        )
    evidence = list(locked.evidence.order_by("recorded_at", "id"))
    if not evidence:
        raise ClearanceRefused(
            "Record independent evidence first: a lead is never cleared for a lineup or an arrest request on the "
            "face search alone."
        )
    locked.cleared_by, locked.cleared_at, locked.clearance_note = user, timezone.now(), (note or "").strip()
    locked.save(update_fields=["cleared_by", "cleared_at", "clearance_note"])
    candidate = locked.candidate
    audit_record(
        action=AuditEntry.Action.LEAD_CLEARED,
        actor=user,
        case=candidate.job.probe.case,
        target=candidate,
        ip_address=ip_address,
        detail=locked.clearance_note,
        data={
            "evidence": [str(item.code) for item in evidence],
            "kinds": [item.kind for item in evidence],
            "job": str(candidate.job.code),
            "profile_id": candidate.profile_id,
        },
    )
    return locked


# --- Reads: the same words everywhere -----------------------------------------------------------------------


@dataclass(frozen=True)
class EvidenceShown:
    code: str
    kind: str
    kind_label: str
    description: str
    obtained_by: str
    obtained_on: datetime.date
    recorded_by: str
    recorded_by_name: str
    recorded_at: datetime.datetime

    @property
    def words(self) -> str:
        return f"{self.kind_label} — {self.description} (obtained by {self.obtained_by} on {self.obtained_on:%d %b %Y})"


@dataclass(frozen=True)
class Clearance:
    """Whether a confirmed lead may go to identification procedures, in one sentence, with its evidence."""

    cleared: bool
    sentence: str
    evidence: list[EvidenceShown] = field(default_factory=list)
    cleared_by: str = ""
    cleared_by_name: str = ""
    cleared_at: datetime.datetime | None = None
    note: str = ""


def _shown(item: IndependentEvidence) -> EvidenceShown:
    return EvidenceShown(
        code=str(item.code),
        kind=item.kind,
        kind_label=KIND_LABELS.get(item.kind, item.kind),
        description=item.description,
        obtained_by=item.obtained_by,
        obtained_on=item.obtained_on,
        recorded_by=item.recorded_by.username,
        recorded_by_name=_person(item.recorded_by),
        recorded_at=item.recorded_at,
    )


def clearance_of(review: LeadReview | None) -> Clearance:
    """The lineup gate's answer for a candidate's review; anything but a cleared confirmed lead is not cleared."""
    if review is None or review.pk is None:
        return Clearance(cleared=False, sentence=NOT_CLEARED)
    evidence = [_shown(item) for item in review.evidence.select_related("recorded_by").order_by("recorded_at", "id")]
    if review.status != LeadReview.Status.CONFIRMED or review.cleared_at is None:
        return Clearance(cleared=False, sentence=NOT_CLEARED, evidence=evidence)
    when = timezone.localtime(review.cleared_at)
    sentence = (
        f"Cleared for identification procedures on {when:%d %b %Y} by {_person(review.cleared_by)}, on independent "
        "evidence: " + "; ".join(item.words for item in evidence) + "."
    )
    return Clearance(
        cleared=True,
        sentence=sentence,
        evidence=evidence,
        cleared_by=review.cleared_by.username,
        cleared_by_name=_person(review.cleared_by),
        cleared_at=review.cleared_at,
        note=review.clearance_note,
    )


def may_record_evidence(*, user: User, review: LeadReview | None) -> bool:
    return (
        review is not None
        and review.status == LeadReview.Status.CONFIRMED
        and user.role in RECORDERS
        and user.agency_id == review.candidate.job.agency_id
        and review.candidate.erased_at is None
    )


def may_clear(*, user: User, review: LeadReview | None) -> bool:
    return may_record_evidence(user=user, review=review) and user.role == Role.SUPERVISOR and not review.cleared_at
