"""The watch-list of unsolved probes: a face of an open case's search, compared with every new enrolment until
it expires ("cold-case" alerts). docs/watchlist.md holds the rules and the numbers.

- An officer (or supervisor) proposes a usable face of a finished search of an open case; a supervisor of the
  agency other than the proposer approves it, for a life of 1 … the policy's watchlist_max_days (default
  WATCHLIST_DEFAULT_DAYS), while the agency holds fewer than watchlist_max_entries approved entries.
- An approved entry keeps a descriptor per engine in use by the galleries its agency may search, each with a
  threshold chosen so that the false alerts expected over the entry's whole life stay under
  WATCHLIST_EXPECTED_FALSE_ALERTS (search.calibration.watchlist_threshold).
- Every new gallery face (search/enrolment/store.py) is compared with the active entries of the agencies that may
  search its gallery; a face at or under a descriptor's threshold opens as a candidate of the entry's search
  (a WatchlistAlert), compared and verified by two people like any other.
- Expiry, case closure or a supervisor's decision end an entry; its descriptors go with it.

The reads the pages need are at the end of this module (the watch-list is one concept; its queries stay together).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Max, Q, QuerySet
from django.utils import timezone

from accounts.models import Agency, Role, User
from accounts.selectors import agency_policy
from portal.audit import audit_record
from portal.models import AuditEntry, Case
from search import calibration, lawful_use, publish
from search.faces import EngineNotAvailable, engine_distance, get_engine, quality_usable
from search.gallery_scope import gallery_ids_by_engine
from search.imaging import decode_photo
from search.models import (
    Candidate,
    FaceImage,
    Gallery,
    ProbeFace,
    SearchJob,
    WatchlistAlert,
    WatchlistDescriptor,
    WatchlistEntry,
)
from search.open_set import LOW_QUALITY
from search.photo_faces import PhotoFaces, same_face

logger = logging.getLogger(__name__)

# The enrolment rate an entry's threshold is set from: faces enrolled per day over this many days.
RATE_WINDOW_DAYS = 30
# Entries that still compare with new enrolments (proposals wait, others are done).
OPEN_STATUSES = (WatchlistEntry.Status.PROPOSED, WatchlistEntry.Status.ACTIVE)
CASE_CLOSED = "case closed"
EXPIRED = "expired"


class WatchlistRefused(ValueError):
    """A watch-list request that is not allowed, with the reason in plain words."""


def _audit_data(entry: WatchlistEntry, **more) -> dict:
    return {
        "entry": str(entry.code),
        "job": str(entry.job.code),
        "probe_face": entry.probe_face.index,
        "days": entry.days,
    } | more


# --- Proposing and deciding ----------------------------------------------------------------------------


def probe_face_job(probe_face: ProbeFace) -> SearchJob | None:
    """The finished search whose results hold this face (a probe's faces are those of its newest finished run)."""
    return (
        SearchJob.objects.filter(probe_id=probe_face.probe_id, status=SearchJob.Status.DONE)
        .select_related("offense_category", "probe__case")
        .order_by("-finished_at", "-id")
        .first()
    )


def _proposer_check(user: User, *, today=None) -> None:
    if user.agency_id is None or user.role not in (Role.OFFICER, Role.SUPERVISOR):
        raise WatchlistRefused("Only the agency's officers and supervisors put faces on the watch-list.")
    try:
        lawful_use.searcher_check(user, on=today)
    except lawful_use.UseRefused as exc:
        raise WatchlistRefused(str(exc)) from None
    today = today or timezone.localdate()
    # Even where the policy asks for none: a standing search must not outlive the searcher's training.
    if user.search_certified_until is not None and user.search_certified_until < today:
        raise WatchlistRefused(
            f"Your face-search certification expired on {user.search_certified_until:%Y-%m-%d}: a watch-list entry "
            "is a search that goes on, and it needs a current certification. Ask your agency admin to record your "
            "renewed training."
        )


def _case_open_check(case: Case) -> None:
    if case.status != Case.Status.OPEN:
        raise WatchlistRefused(f"Case {case.number} is closed: only faces of open cases go on the watch-list.")


def _case_search_check(case: Case, job: SearchJob, now: datetime) -> lawful_use.SearchPermit:
    try:
        return lawful_use.case_search_check(case=case, category=job.offense_category, now=now)
    except lawful_use.UseRefused as exc:
        raise WatchlistRefused(str(exc)) from None


def watchlist_days(*, agency_id: int, days: int | None) -> int:
    """The life asked for, checked against the policy (WATCHLIST_DEFAULT_DAYS, at most the policy's maximum,
    when none is asked for); WatchlistRefused when outside 1 … the maximum."""
    longest = agency_policy(agency_id=agency_id).watchlist_max_days
    if days is None:
        return min(settings.WATCHLIST_DEFAULT_DAYS, longest)
    if not 1 <= days <= longest:
        raise WatchlistRefused(f"A watch-list entry lasts 1 to {longest} days under your agency's policy.")
    return days


def watchlist_propose(
    *,
    probe_face: ProbeFace,
    user: User,
    days: int | None = None,
    note: str = "",
    ip_address: str | None = None,
    now: datetime | None = None,
) -> WatchlistEntry:
    """Propose a face of a finished search of an open case for the watch-list; a supervisor decides."""
    now = now or timezone.now()
    _proposer_check(user, today=timezone.localdate(now))
    job = probe_face_job(probe_face)
    if job is None or job.agency_id != user.agency_id:
        raise WatchlistRefused("Only a face of a finished search of your agency goes on the watch-list.")
    case = job.probe.case
    _case_open_check(case)
    if probe_face.decision == LOW_QUALITY or (not probe_face.decision and not quality_usable(probe_face.quality)):
        raise WatchlistRefused(
            "This face is too small or blurred to compare reliably: it would raise alerts nobody could trust."
        )
    _case_search_check(case, job, now)
    days = watchlist_days(agency_id=user.agency_id, days=days)
    with transaction.atomic():
        # Two proposals of one face at once: the case row is the lock.
        Case.objects.select_for_update().filter(pk=case.pk).first()
        if WatchlistEntry.objects.filter(probe_face=probe_face, status__in=OPEN_STATUSES).exists():
            raise WatchlistRefused("This face is already on the watch-list, or waiting for approval.")
        entry = WatchlistEntry.objects.create(
            agency_id=user.agency_id,
            case=case,
            job=job,
            probe_face=probe_face,
            days=days,
            proposed_by=user,
            proposed_at=now,
            proposal_note=note.strip(),
        )
        audit_record(
            action=AuditEntry.Action.WATCHLIST_PROPOSED,
            actor=user,
            case=case,
            target=entry,
            ip_address=ip_address,
            detail=f"Face {probe_face.index} of case {case.number} proposed for {days} days: {entry.proposal_note}",
            data=_audit_data(entry, note=entry.proposal_note),
        )
    return entry


def watchlist_decide(
    *,
    entry: WatchlistEntry,
    user: User,
    approve: bool,
    note: str = "",
    ip_address: str | None = None,
    now: datetime | None = None,
) -> WatchlistEntry:
    """A supervisor's answer to a proposal: approve (the entry starts comparing now) or reject with a reason."""
    now = now or timezone.now()
    if user.agency_id != entry.agency_id or user.role != Role.SUPERVISOR:
        raise WatchlistRefused("Only a supervisor of the agency approves or rejects a watch-list proposal.")
    if user.id == entry.proposed_by_id:
        raise WatchlistRefused("Nobody approves their own proposal: a second supervisor must decide.")
    note = note.strip()
    if not approve and not note:
        raise WatchlistRefused("Give the reason for not approving the proposal.")
    with transaction.atomic():
        # The agency row serialises approvals, so that two at once cannot pass the limit together.
        Agency.objects.select_for_update().filter(pk=entry.agency_id).first()
        entry = WatchlistEntry.objects.select_related("case", "job", "probe_face").get(pk=entry.pk)
        if entry.status != WatchlistEntry.Status.PROPOSED:
            raise WatchlistRefused(f"This proposal was already answered: {entry.get_status_display().lower()}.")
        if approve:
            _case_open_check(entry.case)
            _case_search_check(entry.case, entry.job, now)
            try:
                _proposer_check(entry.proposed_by, today=timezone.localdate(now))
            except WatchlistRefused as exc:
                raise WatchlistRefused(f"The proposer may no longer put faces on the watch-list: {exc}") from None
            limit = agency_policy(agency_id=entry.agency_id).watchlist_max_entries
            if watchlist_active(agency_id=entry.agency_id, now=now).count() >= limit:
                raise WatchlistRefused(
                    f"Your agency has {limit} approved watch-list entries, the most its policy allows at one time: "
                    "end one before approving another."
                )
        entry.status = WatchlistEntry.Status.ACTIVE if approve else WatchlistEntry.Status.REJECTED
        entry.decided_by, entry.decided_at, entry.decision_note = user, now, note
        entry.expires_at = now + timedelta(days=entry.days) if approve else None
        entry.save()
        descriptor = _own_descriptor(entry, now) if approve else None
        audit_record(
            action=AuditEntry.Action.WATCHLIST_APPROVED if approve else AuditEntry.Action.WATCHLIST_REJECTED,
            actor=user,
            case=entry.case,
            target=entry,
            ip_address=ip_address,
            detail=(
                f"Approved until {timezone.localtime(entry.expires_at):%Y-%m-%d %H:%M}"
                if approve
                else f"Not approved: {note}"
            )[:300],
            data=_audit_data(
                entry,
                note=note,
                expires_at=entry.expires_at.isoformat() if entry.expires_at else None,
                threshold=descriptor.threshold if descriptor else None,
            ),
        )
        if approve:
            entry_id = entry.id
            # The other engines need the probe photo described again: a worker does it.
            transaction.on_commit(lambda: publish.watchlist_describe.apply_async((entry_id,)))
    return entry


def watchlist_end(
    *, entry: WatchlistEntry, reason: str, actor: User | None = None, now: datetime | None = None
) -> WatchlistEntry:
    """End a proposed or active entry (its descriptors deleted, its alerts kept), audited with the reason."""
    now = now or timezone.now()
    with transaction.atomic():
        entry = WatchlistEntry.objects.select_for_update().select_related("case", "job", "probe_face").get(pk=entry.pk)
        if entry.status not in OPEN_STATUSES:
            return entry
        entry.status, entry.ended_at, entry.end_reason = WatchlistEntry.Status.ENDED, now, reason[:100]
        entry.save(update_fields=["status", "ended_at", "end_reason"])
        entry.descriptors.all().delete()
        audit_record(
            action=AuditEntry.Action.WATCHLIST_ENDED,
            actor=actor,
            agency=entry.case.agency,
            case=entry.case,
            target=entry,
            detail=f"Removed from the watch-list: {reason}"[:300],
            data=_audit_data(entry, reason=reason),
        )
    return entry


def watchlist_end_by_user(*, entry: WatchlistEntry, user: User, reason: str) -> WatchlistEntry:
    """A supervisor of the agency, or the proposer, takes an entry off the watch-list."""
    if user.agency_id != entry.agency_id or not (user.role == Role.SUPERVISOR or user.id == entry.proposed_by_id):
        raise WatchlistRefused("Only a supervisor of the agency, or the proposer, removes a watch-list entry.")
    if entry.status not in OPEN_STATUSES:
        raise WatchlistRefused("This entry is no longer on the watch-list.")
    reason = reason.strip()
    if not reason:
        raise WatchlistRefused("Say why the entry is removed.")
    return watchlist_end(entry=entry, reason=reason, actor=user)


def watchlist_entries_end_for_case(case: Case, reason: str = CASE_CLOSED, actor: User | None = None) -> int:
    """End every proposed or active entry of the case (at its closure); how many were ended."""
    entries = list(WatchlistEntry.objects.filter(case=case, status__in=OPEN_STATUSES))
    for entry in entries:
        watchlist_end(entry=entry, reason=reason, actor=actor)
    return len(entries)


def watchlist_expire(now: datetime | None = None) -> int:
    """End the active entries whose life is over (the beat runs it daily; matching checks expiry anyway)."""
    now = now or timezone.now()
    entries = list(WatchlistEntry.objects.filter(status=WatchlistEntry.Status.ACTIVE, expires_at__lte=now))
    for entry in entries:
        watchlist_end(entry=entry, reason=EXPIRED, now=now)
    return len(entries)


# --- Descriptors and their thresholds ---------------------------------------------------------------------


def expected_enrolments(*, agency_id: int, engine: str, gallery_ids: list[int], days: int, now: datetime) -> dict:
    """N of an entry's threshold: the faces expected to be enrolled over its life in the galleries the agency may
    search with that engine (the last RATE_WINDOW_DAYS' rate × its days), never fewer than the setting's floor."""
    recent = FaceImage.objects.filter(
        gallery_id__in=gallery_ids, engine=engine, created_at__gt=now - timedelta(days=RATE_WINDOW_DAYS)
    ).count()
    rate = recent / RATE_WINDOW_DAYS
    return {
        "enrolled_last_window": recent,
        "window_days": RATE_WINDOW_DAYS,
        "rate_per_day": round(rate, 3),
        "days": days,
        "floor": settings.WATCHLIST_MIN_EXPECTED_ENROLMENTS,
        "expected_enrolments": max(int(np.ceil(rate * days)), settings.WATCHLIST_MIN_EXPECTED_ENROLMENTS),
    }


def _descriptor_store(entry: WatchlistEntry, engine: str, embedding, now: datetime) -> WatchlistDescriptor:
    gallery_ids = gallery_ids_by_engine(agency_id=entry.agency_id).get(engine, [])
    expected = expected_enrolments(
        agency_id=entry.agency_id, engine=engine, gallery_ids=gallery_ids, days=entry.days, now=now
    )
    threshold = calibration.watchlist_threshold(
        agency_id=entry.agency_id, engine=engine, expected_enrolments=expected["expected_enrolments"]
    )
    descriptor, _ = WatchlistDescriptor.objects.update_or_create(
        entry=entry,
        engine=engine,
        defaults={
            "embedding": np.asarray(embedding, dtype=np.float32),
            "threshold": threshold.distance,
            "threshold_data": threshold.as_json() | expected,
        },
    )
    return descriptor


def _own_descriptor(entry: WatchlistEntry, now: datetime) -> WatchlistDescriptor | None:
    """The probe face's own descriptor, when its engine is one the agency's galleries are searched with."""
    if entry.probe_face.engine not in gallery_ids_by_engine(agency_id=entry.agency_id):
        return None
    return _descriptor_store(entry, entry.probe_face.engine, entry.probe_face.embedding, now)


@dataclass
class FillResult:
    added: list[str]
    missing: dict[str, str]  # engine → why it has no descriptor


def watchlist_descriptors_fill(*, entry_id: int, now: datetime | None = None) -> FillResult | None:
    """Give an active entry a descriptor for every engine its agency's galleries are searched with.

    Another engine than the probe face's needs the probe photo described again (the face found where the probe
    face's box is); a probe photo purged under retention, an engine not installed, or no face found there leave
    that engine without one (said in the result and the log). Safe to run twice.
    """
    now = now or timezone.now()
    entry = WatchlistEntry.objects.select_related("probe_face", "probe_face__probe").filter(pk=entry_id).first()
    if entry is None or entry.status != WatchlistEntry.Status.ACTIVE:
        return None
    result = FillResult(added=[], missing={})
    have = set(entry.descriptors.values_list("engine", flat=True))
    wanted = [engine for engine in gallery_ids_by_engine(agency_id=entry.agency_id) if engine not in have]
    image = None
    for engine in wanted:
        if engine == entry.probe_face.engine:
            _descriptor_store(entry, engine, entry.probe_face.embedding, now)
            result.added.append(engine)
            continue
        probe = entry.probe_face.probe
        if probe.purged_at is not None or not probe.searched_image:
            result.missing[engine] = "the probe photo was deleted under retention"
            continue
        try:
            if image is None:
                # Decoded as the search decoded it, so that the probe face's box points at the same face.
                with default_storage.open(probe.searched_image.name, "rb") as stored:
                    image = decode_photo(stored.read()).image
            found = same_face(entry.probe_face.box, PhotoFaces(image, get_engine(engine)).find())
        except EngineNotAvailable as exc:
            result.missing[engine] = str(exc)
            continue
        if found is None:
            result.missing[engine] = f"{engine} finds no face where the probe face is"
            continue
        _descriptor_store(entry, engine, found.embedding, now)
        result.added.append(engine)
    if result.missing:
        logger.warning("Watch-list entry %s has no descriptor for %s", entry.code, result.missing)
    return result


def watchlist_descriptors_for_gallery(gallery: Gallery) -> list[FillResult]:
    """After a gallery switched engine (search/reembed.py): the active entries of the agencies that may search it
    get a descriptor of its new engine."""
    agencies = {gallery.owner_id, *gallery.shared_with.values_list("id", flat=True)}
    entries = WatchlistEntry.objects.filter(status=WatchlistEntry.Status.ACTIVE, agency_id__in=agencies).exclude(
        descriptors__engine=gallery.engine
    )
    return [
        result
        for entry_id in entries.values_list("id", flat=True)
        if (result := watchlist_descriptors_fill(entry_id=entry_id))
    ]


# --- Comparing a new enrolment ----------------------------------------------------------------------------


def _descriptors_for(face_image: FaceImage, now: datetime) -> QuerySet[WatchlistDescriptor]:
    """The descriptors a new face is compared with: its engine's, of the unexpired active entries of the agencies
    that may search its gallery (its owner and those it is shared with). One query."""
    return _descriptors_for_gallery(
        gallery_id=face_image.gallery_id, owner_id=face_image.gallery.owner_id, engine=face_image.engine, now=now
    )


def _descriptors_for_gallery(*, gallery_id: int, owner_id: int, engine: str, now: datetime):
    return (
        WatchlistDescriptor.objects.filter(
            Q(entry__agency_id=owner_id) | Q(entry__agency__shared_galleries__id=gallery_id),
            engine=engine,
            entry__status=WatchlistEntry.Status.ACTIVE,
            entry__expires_at__gt=now,
        )
        .select_related("entry", "entry__case", "entry__case__agency", "entry__job__offense_category")
        .distinct()
    )


def watchlist_descriptors_compared(*, gallery: Gallery, engine: str, now: datetime) -> list[WatchlistDescriptor] | None:
    """The descriptors every new face of the gallery is compared with right now (read once for a batch's chunk),
    or None when they could not be read (logged; each face's check then reads them itself)."""
    try:
        with transaction.atomic():
            return list(
                _descriptors_for_gallery(gallery_id=gallery.id, owner_id=gallery.owner_id, engine=engine, now=now)
            )
    except Exception:
        logger.exception("Watch-list descriptors of gallery %s could not be read", gallery.id)
        return None


def _may_alert(entry: WatchlistEntry, face_image: FaceImage, now: datetime) -> bool:
    """The rules a search of the entry's case would apply to this face right now."""
    category = entry.job.offense_category
    if face_image.minor_at_enrolment and not (category and category.is_missing_person):
        return False
    if entry.case.status != Case.Status.OPEN:
        return False
    try:
        permit = lawful_use.case_search_check(case=entry.case, category=category, now=now)
    except lawful_use.UseRefused:
        return False
    scoped = lawful_use.authorised_galleries(permit.authorisation, {face_image.engine: [face_image.gallery_id]})
    return bool(scoped)


def watchlist_check_enrolled(
    face_image: FaceImage, now: datetime | None = None, *, descriptors: list[WatchlistDescriptor] | None = None
) -> list[WatchlistAlert]:
    """Compare a newly enrolled face with the watch-list; an alert (a likely candidate of the entry's search)
    for each entry it is at or under the threshold of. In the caller's transaction. `descriptors`: those of
    watchlist_descriptors_compared, when the caller read them for several faces."""
    now = now or timezone.now()
    if descriptors is None:
        descriptors = list(_descriptors_for(face_image, now))
    alerts = []
    for descriptor, distance in _within_threshold(face_image, descriptors):
        entry = descriptor.entry
        if not _may_alert(entry, face_image, now):
            continue
        alerts.append(_alert_raise(entry, descriptor, face_image, distance, now))
    return alerts


def _within_threshold(face_image: FaceImage, descriptors: list[WatchlistDescriptor]) -> list[tuple]:
    """(descriptor, distance) of each descriptor the face is at or under the threshold of."""
    if not descriptors:
        return []
    embedding = np.asarray(face_image.descriptor.embedding, dtype=np.float64)
    near = []
    for descriptor in descriptors:
        distance = engine_distance(face_image.engine, np.asarray(descriptor.embedding, dtype=np.float64), embedding)
        if descriptor.threshold is None or distance > descriptor.threshold:
            continue
        near.append((descriptor, distance))
    return near


def _alert_raise(
    entry: WatchlistEntry, descriptor: WatchlistDescriptor, face_image: FaceImage, distance: float, now: datetime
) -> WatchlistAlert:
    with transaction.atomic():
        last_rank = (
            Candidate.objects.filter(job_id=entry.job_id, probe_face_id=entry.probe_face_id).aggregate(Max("rank"))[
                "rank__max"
            ]
            or 0
        )
        candidate = Candidate.objects.create(
            job_id=entry.job_id,
            probe_face_id=entry.probe_face_id,
            profile_id=face_image.profile_id,
            face_image=face_image,
            engine=face_image.engine,
            distance=distance,
            rank=last_rank + 1,
            likely=True,
        )
        alert = WatchlistAlert.objects.create(
            entry=entry,
            candidate=candidate,
            face_image=face_image,
            engine=face_image.engine,
            distance=distance,
            threshold=descriptor.threshold,
            created_at=now,
        )
        audit_record(
            action=AuditEntry.Action.WATCHLIST_ALERT,
            agency=entry.case.agency,
            case=entry.case,
            target=alert,
            detail=(
                f"New enrolment {face_image.code} at {distance:.3f}, under the watch-list threshold "
                f"{descriptor.threshold:.3f} of face {entry.probe_face.index} of case {entry.case.number}"
            ),
            data={
                "entry": str(entry.code),
                "face_image": str(face_image.code),
                "gallery": face_image.gallery_id,
                "engine": face_image.engine,
                "distance": round(distance, 4),
                "threshold": descriptor.threshold,
                "candidate": candidate.id,
                "rank": candidate.rank,
            },
        )
    return alert


def watchlist_check_enrolled_safely(
    face_image: FaceImage, *, descriptors: list[WatchlistDescriptor] | None = None, now: datetime | None = None
) -> list[WatchlistAlert]:
    """watchlist_check_enrolled for the enrolment paths: a failure of the check never loses the enrolment (its
    savepoint rolls back, the error is logged with the face's code; docs/watchlist.md). With the descriptors read
    already, a face near none of them costs no query."""
    try:
        if descriptors is not None and not _within_threshold(face_image, descriptors):
            return []
        with transaction.atomic():
            return watchlist_check_enrolled(face_image, now, descriptors=descriptors)
    except Exception:
        logger.exception("Watch-list check of new face %s failed; the face stays enrolled", face_image.code)
        return []


# --- Reads for the pages -------------------------------------------------------------------------------------


def watchlist_active(*, agency_id: int, now: datetime | None = None) -> QuerySet[WatchlistEntry]:
    """The agency's approved entries still running (the policy's limit counts these)."""
    now = now or timezone.now()
    return WatchlistEntry.objects.filter(agency_id=agency_id, status=WatchlistEntry.Status.ACTIVE, expires_at__gt=now)


def watchlist_entries_of(*, user: User) -> QuerySet[WatchlistEntry]:
    return (
        WatchlistEntry.objects.filter(agency_id=user.agency_id)
        .select_related("case", "job", "probe_face", "proposed_by", "decided_by")
        .prefetch_related("descriptors")
        .order_by("-proposed_at")
    )


def watchlist_entry_get(*, user: User, code) -> WatchlistEntry | None:
    """The user's agency's entry of that code, or None (the view answers 404: another agency's is not told)."""
    return watchlist_entries_of(user=user).filter(code=code).first()


def watchlist_alerts_of(*, user: User) -> QuerySet[WatchlistAlert]:
    return (
        WatchlistAlert.objects.filter(entry__agency_id=user.agency_id)
        .select_related("entry", "entry__case", "entry__job", "candidate", "candidate__probe_face", "face_image")
        .order_by("-created_at")
    )


def watchlist_alert_get(*, user: User, alert_id: int) -> WatchlistAlert | None:
    return watchlist_alerts_of(user=user).filter(pk=alert_id).first()


def _cases_of(user: User) -> Q:
    """The user's cases, for alerts: those they opened or searched in."""
    return Q(entry__case__created_by=user) | Q(entry__case__probes__jobs__started_by=user)


def watchlist_alerts_unseen_count(*, user: User) -> int:
    """Alerts not yet opened, of the user's cases (one COUNT, for the header)."""
    return (
        WatchlistAlert.objects.filter(_cases_of(user), entry__agency_id=user.agency_id, seen_at__isnull=True)
        .values("id")
        .distinct()
        .count()
    )


def watchlist_alert_open(*, alert: WatchlistAlert, user: User) -> WatchlistAlert:
    """The first opening of an alert by a user of its agency marks it seen."""
    if alert.seen_at is None and user.agency_id == alert.entry.agency_id:
        WatchlistAlert.objects.filter(pk=alert.pk, seen_at__isnull=True).update(seen_at=timezone.now())
        alert.refresh_from_db(fields=["seen_at"])
    return alert


@dataclass
class Offer:
    """Whether the results page offers to put a face on the watch-list, and what it says otherwise."""

    eligible: bool
    reason: str = ""
    entry: WatchlistEntry | None = None


def watchlist_offer(*, probe_face: ProbeFace, user: User) -> Offer:
    """What the results page shows for a face: its entry, the form, or why not (without the database-heavy
    checks a proposal makes again)."""
    entry = (
        WatchlistEntry.objects.filter(probe_face=probe_face, status__in=OPEN_STATUSES).order_by("-proposed_at").first()
    )
    if entry is not None:
        return Offer(eligible=False, entry=entry)
    if user.role not in (Role.OFFICER, Role.SUPERVISOR):
        return Offer(eligible=False)
    if probe_face.probe.case.status != Case.Status.OPEN:
        return Offer(eligible=False, reason="The case is closed.")
    if probe_face.decision == LOW_QUALITY:
        return Offer(eligible=False, reason="Too small or blurred for the watch-list.")
    return Offer(eligible=True)
