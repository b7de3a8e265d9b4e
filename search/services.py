"""Writes for galleries, enrolment, probes and search jobs."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnreachable

from accounts.models import Agency, User
from portal.models import Case
from search import index
from search.enrolment import AnalysedPhoto, EnrolmentSkipped, analyse_files, content_hash, enrolment_analyse
from search.faces import engine_threshold, get_engine
from search.facework import FoundFace
from search.imaging import decode_photo, encode_jpeg
from portal.audit import audit_record
from portal.models import AuditEntry
from search.models import FaceImage, Gallery, OffenseCategory, Probe, Profile, SearchJob

logger = logging.getLogger(__name__)


class SearchRefused(ValueError):
    """A search that cannot start, with the reason."""


# --- Files ------------------------------------------------------------------------------------

def media_store(name: str, data: bytes) -> str:
    """Write a file under MEDIA_ROOT at exactly that name (replacing a previous one)."""
    if default_storage.exists(name):
        default_storage.delete(name)
    return default_storage.save(name, ContentFile(data))


def media_delete(*names: str) -> None:
    for name in names:
        if name and default_storage.exists(name):
            default_storage.delete(name)


# --- Galleries and enrolment ------------------------------------------------------------------

def gallery_get_or_create(*, owner: Agency, name: str, legal_basis: str = "", source_type: str = "",
                          responsible_person: str = "", retention_days: int | None = None,
                          legal_basis_reference: str = "", source_description: str = "") -> tuple[Gallery, bool]:
    """The agency's gallery of that name; a new one needs its provenance (an existing one keeps its own)."""
    gallery = Gallery.objects.filter(owner=owner, name=name).first()
    if gallery:
        return gallery, False
    missing = [label for label, value in (("a legal basis", legal_basis.strip()), ("a source type", source_type),
                                          ("a responsible person", responsible_person.strip()),
                                          ("a retention period", retention_days)) if not value]
    if missing:
        raise EnrolmentSkipped(f"A new gallery needs {', '.join(missing)}.", "provenance")
    if source_type not in Gallery.SourceType.values:
        raise EnrolmentSkipped(f"Unknown source type {source_type!r}; use one of {', '.join(Gallery.SourceType.values)}.",
                               "provenance")
    gallery = Gallery.objects.create(
        owner=owner, name=name, legal_basis=legal_basis.strip(), legal_basis_reference=legal_basis_reference.strip(),
        source_type=source_type, responsible_person=responsible_person.strip(), retention_days=retention_days,
        source_description=source_description, engine=settings.FACE_ENGINE)
    return gallery, True


def profile_get_or_create(*, gallery: Gallery, display_name: str, date_of_birth: date | None = None,
                          aliases: list[str] | None = None, record_reference: str = "") -> Profile:
    profile, created = Profile.objects.get_or_create(
        gallery=gallery, display_name=display_name,
        defaults={"date_of_birth": date_of_birth, "aliases": list(aliases or []),
                  "record_reference": record_reference},
    )
    return profile


def profile_is_minor(profile: Profile, on: date | None = None) -> bool:
    """Under 18 on the given day (enrolment: today), from the profile's date of birth if known."""
    if profile.date_of_birth is None:
        return False
    on = on or timezone.localdate()
    born = profile.date_of_birth
    age = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    return age < 18


def enrolment_quality_gate(faces: list) -> FoundFace:
    """The face to enrol, or EnrolmentSkipped: no face, too small, ambiguous, or too blurred.

    The limits are settings chosen from the shared labelled photos (docs/quality-gate.md).
    """
    if not faces:
        raise EnrolmentSkipped("No face found in the photo.", "no_face")
    ranked = sorted(faces, key=lambda face: face.width, reverse=True)
    largest = ranked[0]
    if largest.width < settings.ENROL_MIN_FACE_PX:
        raise EnrolmentSkipped(f"The face is too small ({largest.width} px wide; at least "
                               f"{settings.ENROL_MIN_FACE_PX} px at the photo's own resolution).", "too_small")
    if len(ranked) > 1 and ranked[1].width >= settings.ENROL_AMBIGUOUS_RATIO * largest.width:
        raise EnrolmentSkipped(f"Two faces of similar size ({largest.width} and {ranked[1].width} px): which person "
                               "is meant is ambiguous. Crop the photo to one face.", "ambiguous")
    if largest.quality["sharpness"] < settings.ENROL_MIN_SHARPNESS:
        raise EnrolmentSkipped(f"The face is too blurred (sharpness {largest.quality['sharpness']:.0f}, at least "
                               f"{settings.ENROL_MIN_SHARPNESS:.0f}).", "blurred")
    return largest


@dataclass
class EnrolResult:
    face_image: FaceImage
    faces_found: int
    notes: list[str] = field(default_factory=list)


def face_image_enrol(*, profile: Profile, data: bytes, source_name: str,
                     enrolled_by: User | None = None) -> EnrolResult:
    """Enrol the largest face of a photo into the profile's gallery, or raise EnrolmentSkipped."""
    _enrolment_precheck(profile, content_hash(data))
    analysed = enrolment_analyse(data, profile.gallery.engine)
    return face_image_store(profile=profile, analysed=analysed, source_name=source_name, enrolled_by=enrolled_by)


def _enrolment_precheck(profile: Profile, photo_hash: str) -> None:
    """The refusals that need no face: a minor outside a missing-person gallery, a photo enrolled already."""
    gallery = profile.gallery
    if profile_is_minor(profile) and gallery.source_type != Gallery.SourceType.MISSING:
        raise EnrolmentSkipped("The person is a minor (under 18 at enrolment): only missing-person galleries may "
                               "hold minors.", "minor")
    if FaceImage.objects.filter(gallery=gallery, content_hash=photo_hash, engine=gallery.engine).exists():
        raise EnrolmentSkipped("The same photo is already enrolled in this gallery.", "duplicate")


def face_image_store(*, profile: Profile, analysed: AnalysedPhoto, source_name: str,
                     enrolled_by: User | None = None) -> EnrolResult:
    """Store an analysed photo as a face of the profile, or raise EnrolmentSkipped (minor, duplicate, erased)."""
    gallery = profile.gallery
    _enrolment_precheck(profile, analysed.content_hash)
    engine_name = gallery.engine
    erased = index.nearest_tombstone_distance(analysed.embedding, engine=engine_name)
    if erased is not None and erased <= engine_threshold(engine_name):
        audit_record(action=AuditEntry.Action.TOMBSTONE_HIT, actor=enrolled_by, agency=gallery.owner, target=gallery,
                     detail=f"{source_name}: matches a face erased at a person's request (distance {erased:.3f})")
        raise EnrolmentSkipped("The face matches a face erased at the person's request (tombstone): it is not "
                               "enrolled again, and the privacy officer is told.", "tombstone")
    small_others = analysed.faces_found - 1
    notes = [f"{analysed.faces_found} faces in the photo; the largest was enrolled ({small_others} much smaller "
             "background face(s) left out)."] if small_others else []

    stem = f"{gallery.code}/{analysed.content_hash[:32]}"
    image_name = media_store(f"gallery/{stem}.jpg", analysed.image_jpeg)
    crop_name = media_store(f"crops/gallery/{stem}.jpg", analysed.crop_jpeg)
    try:
        face_image = FaceImage.objects.create(
            profile=profile, gallery=gallery, image=image_name, crop=crop_name, source_name=source_name,
            box=analysed.box, landmarks=analysed.landmarks, embedding=analysed.embedding, engine=engine_name,
            quality=analysed.quality, content_hash=analysed.content_hash, enrolled_by=enrolled_by,
            minor_at_enrolment=profile_is_minor(profile),
        )
    except Exception:
        media_delete(image_name, crop_name)  # no orphaned file when the row cannot be written
        raise
    return EnrolResult(face_image=face_image, faces_found=analysed.faces_found, notes=notes)


# --- Probes and search jobs -------------------------------------------------------------------

def search_purpose_check(*, purpose: str, justification: str) -> tuple[OffenseCategory, str]:
    """The stated purpose of a search: an active offense category and a justification long enough."""
    purpose = (purpose or settings.SEARCH_DEFAULT_PURPOSE).strip()
    justification = (justification or settings.SEARCH_DEFAULT_JUSTIFICATION).strip()
    category = OffenseCategory.objects.filter(name__iexact=purpose, is_active=True).first()
    if category is None:
        names = ", ".join(OffenseCategory.objects.filter(is_active=True).values_list("name", flat=True))
        if not purpose:
            raise SearchRefused(f"State the purpose of the search: an offense category ({names}).")
        raise SearchRefused(f"Unknown offense category {purpose!r}; choose one of: {names}.")
    if len(justification) < settings.SEARCH_JUSTIFICATION_MIN_CHARS:
        raise SearchRefused(f"Justify the search in at least {settings.SEARCH_JUSTIFICATION_MIN_CHARS} characters: "
                            "why is it needed for this case?")
    return category, justification


def probe_submit(*, case: Case, uploaded_by: User, data: bytes, original_name: str = "",
                 top_k: int | None = None, purpose: str = "", justification: str = "",
                 ip_address: str | None = None, sensitive: bool = False) -> SearchJob:
    """Check and store a probe photo and queue its search; raises PhotoRejected or SearchRefused.

    A search needs an open case of the uploader's agency, an offense category and a justification.
    """
    if uploaded_by.agency_id is None or case.agency_id != uploaded_by.agency_id:
        raise SearchRefused("You can only search inside a case of your own agency.")
    if case.status != Case.Status.OPEN:
        raise SearchRefused(f"Case {case.number} is closed; reopen it to search.")
    category, justification = search_purpose_check(purpose=purpose, justification=justification)
    recent = SearchJob.objects.filter(started_by=uploaded_by,
                                      created_at__gte=timezone.now() - timedelta(minutes=1)).count()
    if recent >= settings.UPLOADS_PER_MINUTE:
        raise SearchRefused(f"At most {settings.UPLOADS_PER_MINUTE} photos a minute per user: wait a moment "
                            "and upload the rest.")
    top_k = top_k or settings.SEARCH_TOP_K
    if not 1 <= top_k <= 100:
        raise SearchRefused("The number of candidates must be between 1 and 100.")
    photo = decode_photo(data)  # nothing is stored for a photo that fails here

    engine = get_engine(settings.FACE_ENGINE)
    image_name = media_store(f"probes/{case.agency.code}/{photo.content_hash[:16]}-{timezone.now():%Y%m%d%H%M%S%f}.jpg",
                             encode_jpeg(photo.image))
    try:
        with transaction.atomic():
            probe = Probe.objects.create(
                agency_id=case.agency_id, case=case, uploaded_by=uploaded_by, image=image_name,
                original_name=original_name[:255], content_hash=photo.content_hash,
                width=photo.width, height=photo.height,
            )
            job = SearchJob.objects.create(
                agency_id=case.agency_id, probe=probe, started_by=uploaded_by, engine=engine.name,
                threshold=engine.default_threshold, top_k=top_k, offense_category=category,
                justification=justification, sensitive=sensitive,
            )
            audit_record(action=AuditEntry.Action.SEARCH_STARTED, actor=uploaded_by, case=case, target=job,
                         ip_address=ip_address, detail=f"{category.name}: {justification}",
                         data={"purpose": category.name, "justification": justification,
                               "probe_hash": photo.content_hash, "probe": str(probe.code), "job": str(job.code)})
            job_id = job.id
            # Enqueue only after commit, or the worker may look for a row it can't see yet.
            transaction.on_commit(lambda: search_job_enqueue(job_id))
    except Exception:
        media_delete(image_name)
        raise
    return job


SEARCH_LOWEST_PRIORITY = 9  # the broker keeps priorities 0 (taken first) to 9


def search_job_priority(job_id: int) -> int:
    """The job's broker priority: how many other searches of its agency are queued or running, up to 9."""
    return (SearchJob.objects
            .filter(status__in=[SearchJob.Status.QUEUED, SearchJob.Status.RUNNING],
                    agency_id=SearchJob.objects.filter(pk=job_id).values("agency_id")[:1])
            .exclude(pk=job_id)[:SEARCH_LOWEST_PRIORITY].count())


def search_job_enqueue(job_id: int, *, countdown: float | None = None) -> bool:
    """Put a queued job's message on the broker and record when; False when the broker is unreachable
    (the sweeper retries)."""
    from search.tasks import search_job_run_task

    try:
        # One queue for every agency, taken in priority order: an agency with nothing waiting goes ahead
        # of another's burst instead of behind it (workers take the lowest number first, FIFO within one).
        search_job_run_task.apply_async((job_id,), priority=search_job_priority(job_id), countdown=countdown)
    except BrokerUnreachable as exc:
        # The job is committed: raising here would lose it (and the upload would delete its photo).
        logger.warning("Search job %s waits for the broker, which cannot be reached: %s", job_id, exc,
                       extra={"job_id": job_id})
        # No publication on record (also when a sweep had claimed one): the next sweep publishes it.
        SearchJob.objects.filter(pk=job_id, status=SearchJob.Status.QUEUED).update(published_at=None)
        return False
    # The broker has it, and may still lose it if killed outright: the sweeper publishes a queued job again
    # once this is SEARCH_REPUBLISH_SECONDS old.
    SearchJob.objects.filter(pk=job_id, status=SearchJob.Status.QUEUED).update(published_at=timezone.now())
    return True


def _search_jobs_publish(job_ids: list[int]) -> None:
    for position, job_id in enumerate(job_ids):
        if not search_job_enqueue(job_id):
            # The broker is down: the rest give up the publication this sweep claimed, so the next one
            # tries them instead of waiting a whole republish period.
            SearchJob.objects.filter(pk__in=job_ids[position + 1:], status=SearchJob.Status.QUEUED).update(
                published_at=None)
            return


def search_jobs_sweep(*, now=None) -> list[int]:
    """Re-queue running jobs whose worker stopped beating (fail those out of attempts), publish queued jobs
    whose message never reached the broker, and again those published SEARCH_REPUBLISH_SECONDS ago; the ids
    put on the broker."""
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.SEARCH_STALE_SECONDS)
    republish_before = now - timedelta(seconds=settings.SEARCH_REPUBLISH_SECONDS)
    requeued = []
    with transaction.atomic():
        # Never published: once older than the staleness bound, so that the publish right after a job's
        # commit is not doubled. Published long ago: a broker killed outright may have lost the message; if
        # it did not, the second copy is harmless (the claim lets one run). Each row is claimed — locked,
        # skipping rows another sweeper holds, and stamped now — so that sweepers on several hosts publish
        # a job once per period between them.
        due = dict(SearchJob.objects.select_for_update(skip_locked=True)
                   .filter(Q(published_at__isnull=True, created_at__lt=stale_before)
                           | Q(published_at__lt=republish_before), status=SearchJob.Status.QUEUED)
                   .order_by("created_at").values_list("pk", "published_at"))
        if due:
            SearchJob.objects.filter(pk__in=list(due)).update(published_at=now)
        unpublished = [pk for pk, published_at in due.items() if published_at is None]
        republished = [pk for pk, published_at in due.items() if published_at is not None]
        stale = (SearchJob.objects.select_for_update(skip_locked=True, of=("self",))
                 .select_related("started_by", "probe__case")
                 .filter(status=SearchJob.Status.RUNNING, heartbeat_at__lt=stale_before))
        for job in stale:
            if job.attempts >= settings.SEARCH_MAX_ATTEMPTS:
                reason = f"The search was interrupted {job.attempts} times (its worker stopped); it was given up."
                SearchJob.objects.filter(pk=job.pk).update(
                    status=SearchJob.Status.FAILED, stage=SearchJob.Stage.FAILED, finished_at=now, error=reason)
                audit_record(action=AuditEntry.Action.SEARCH_FAILED, actor=job.started_by, target=job,
                             case=job.probe.case, detail=reason)
            else:
                # Claimed for this sweep's publish, as the queued jobs above.
                SearchJob.objects.filter(pk=job.pk).update(status=SearchJob.Status.QUEUED,
                                                           stage=SearchJob.Stage.QUEUED, heartbeat_at=None,
                                                           published_at=now)
                requeued.append(job.pk)
        published = requeued + unpublished + republished
        if published:
            transaction.on_commit(lambda: _search_jobs_publish(published))
    if requeued:
        logger.warning("Re-queued search jobs whose worker was lost: %s", requeued, extra={"job_ids": requeued})
    if unpublished:
        logger.warning("Publishing search jobs that never reached the broker: %s", unpublished,
                       extra={"job_ids": unpublished})
    if republished:
        logger.warning("Publishing again search jobs still queued %s s after their message reached the broker "
                       "(it may have been lost): %s", settings.SEARCH_REPUBLISH_SECONDS, republished,
                       extra={"job_ids": republished})
    return published


def search_job_claim(*, job_id: int, now=None) -> int | None:
    """Take a job for this worker; the attempt number, or None if it is done or taken."""
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.SEARCH_STALE_SECONDS)
    claimable = Q(status=SearchJob.Status.QUEUED) | Q(status=SearchJob.Status.RUNNING,
                                                       heartbeat_at__lt=stale_before)
    with transaction.atomic():
        job = SearchJob.objects.select_for_update().filter(claimable, pk=job_id).first()
        if job is None:
            return None  # deleted, finished, or running on another worker
        if job.attempts >= settings.SEARCH_MAX_ATTEMPTS:
            SearchJob.objects.filter(pk=job_id).update(
                status=SearchJob.Status.FAILED, stage=SearchJob.Stage.FAILED, finished_at=now,
                error=f"The search was interrupted {job.attempts} times; it was given up.")
            return None
        SearchJob.objects.filter(pk=job_id).update(
            status=SearchJob.Status.RUNNING, stage=SearchJob.Stage.DETECTING, attempts=F("attempts") + 1,
            heartbeat_at=now, started_at=job.started_at or now, error="")
        return job.attempts + 1


@dataclass
class EnrolmentItem:
    """One photo to enrol, with the profile it belongs to."""

    path: str
    display_name: str
    profile_fields: dict = field(default_factory=dict)
    source_name: str = ""  # shown to investigators; the file name when empty


@dataclass
class EnrolmentSummary:
    gallery: Gallery
    gallery_created: bool
    profiles: set = field(default_factory=set)
    faces_enrolled: int = 0
    skipped: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def as_dict(self) -> dict:
        reasons: dict[str, int] = {}
        for item in self.skipped:
            reasons[item["code"]] = reasons.get(item["code"], 0) + 1
        return {
            "gallery": self.gallery.name,
            "gallery_id": self.gallery.id,
            "gallery_created": self.gallery_created,
            "profiles": len(self.profiles),
            "faces_enrolled": self.faces_enrolled,
            "files_skipped": len(self.skipped),
            "skipped": self.skipped,
            "skip_reasons": reasons,
            "notes": self.notes,
        }


def gallery_enrol_batch(*, gallery: Gallery, gallery_created: bool, items: list[EnrolmentItem],
                        enrolled_by: User | None = None, progress=None, workers: int = 1) -> EnrolmentSummary:
    """Enrol many photos; each photo is enrolled whole or skipped with its reason.

    With workers > 1 the photos are analysed on that many processes while this one stores them, in order.
    """
    summary = EnrolmentSummary(gallery=gallery, gallery_created=gallery_created)
    analysed_items = analyse_files([item.path for item in items], gallery.engine, workers)
    for item, analysed in zip(items, analysed_items):
        try:
            if isinstance(analysed, EnrolmentSkipped):
                raise analysed
            profile = profile_get_or_create(gallery=gallery, display_name=item.display_name, **item.profile_fields)
            result = face_image_store(profile=profile, analysed=analysed, enrolled_by=enrolled_by,
                                      source_name=item.source_name or os.path.basename(item.path))
        except EnrolmentSkipped as exc:
            summary.skipped.append({"file": item.path, "reason": str(exc), "code": exc.code})
        else:
            summary.faces_enrolled += 1
            summary.profiles.add(profile.id)
            summary.notes += [{"file": item.path, "note": note} for note in result.notes]
        if progress is not None:
            progress(item)
    # A profile whose every photo was skipped holds nothing: do not keep an empty record.
    Profile.objects.filter(gallery=gallery, face_images__isnull=True).delete()
    audit_record(action=AuditEntry.Action.GALLERY_ENROLLED, actor=enrolled_by, agency=gallery.owner, target=gallery,
                 detail=f"{summary.faces_enrolled} faces enrolled into {gallery.name}, {len(summary.skipped)} skipped",
                 data={"gallery_created": gallery_created, "profiles": len(summary.profiles),
                       "faces_enrolled": summary.faces_enrolled, "skipped": len(summary.skipped)})
    return summary
