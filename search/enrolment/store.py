"""The writes of enrolment: galleries and profiles, the refusals that need the database (a minor, a photo
enrolled already, an erased face), storing an analysed photo, a batch, and the galleries page's upload."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import date

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Agency, User
from portal.audit import audit_record
from portal.models import AuditEntry
from search import calibration, index, watchlist
from search.enrolment.analysis import (
    AnalysedPhoto,
    EnrolmentSkipped,
    analyse_files,
    content_hash,
    enrolment_analyse,
    stored_image,
)
from search.faces import ENGINES, EngineNotAvailable, get_engine, quality_usable
from search.imaging import PhotoRejected, photo_size_check
from search.models import FaceDescriptor, FaceImage, Gallery, Profile, Tombstone
from search.open_set import LIKELY, Threshold, face_decision
from search.photo_faces import FoundFace, PhotoFaces, timed
from search.storage import MediaUnavailable, media_delete, media_store


def gallery_get_or_create(
    *,
    owner: Agency,
    name: str,
    legal_basis: str = "",
    source_type: str = "",
    responsible_person: str = "",
    retention_days: int | None = None,
    legal_basis_reference: str = "",
    source_description: str = "",
) -> tuple[Gallery, bool]:
    """The agency's gallery of that name; a new one needs its provenance (an existing one keeps its own)."""
    gallery = Gallery.objects.filter(owner=owner, name=name).first()
    if gallery:
        return gallery, False
    missing = [
        label
        for label, value in (
            ("a legal basis", legal_basis.strip()),
            ("a source type", source_type),
            ("a responsible person", responsible_person.strip()),
            ("a retention period", retention_days),
        )
        if not value
    ]
    if missing:
        raise EnrolmentSkipped(f"A new gallery needs {', '.join(missing)}.", "provenance")
    if source_type not in Gallery.SourceType.values:
        raise EnrolmentSkipped(
            f"Unknown source type {source_type!r}; use one of {', '.join(Gallery.SourceType.values)}.", "provenance"
        )
    gallery = Gallery.objects.create(
        owner=owner,
        name=name,
        legal_basis=legal_basis.strip(),
        legal_basis_reference=legal_basis_reference.strip(),
        source_type=source_type,
        responsible_person=responsible_person.strip(),
        retention_days=retention_days,
        source_description=source_description,
        engine=settings.FACE_ENGINE,
    )
    return gallery, True


def profile_get_or_create(
    *,
    gallery: Gallery,
    display_name: str,
    date_of_birth: date | None = None,
    aliases: list[str] | None = None,
    record_reference: str = "",
) -> Profile:
    profile, created = Profile.objects.get_or_create(
        gallery=gallery,
        display_name=display_name,
        defaults={"date_of_birth": date_of_birth, "aliases": list(aliases or []), "record_reference": record_reference},
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


@dataclass
class EnrolResult:
    face_image: FaceImage
    faces_found: int
    notes: list[str] = field(default_factory=list)


def face_image_enrol(
    *, profile: Profile, data: bytes, source_name: str, enrolled_by: User | None = None
) -> EnrolResult:
    """Enrol the largest face of a photo into the profile's gallery, or raise EnrolmentSkipped."""
    _enrolment_precheck(profile, content_hash(data))
    analysed = enrolment_analyse(data, profile.gallery.engine)
    return face_image_store(profile=profile, analysed=analysed, source_name=source_name, enrolled_by=enrolled_by)


def _enrolment_precheck(profile: Profile, photo_hash: str) -> None:
    """The refusals that need no face: a minor outside a missing-person gallery, a photo enrolled already."""
    gallery = profile.gallery
    _minor_check(profile)
    if FaceImage.objects.filter(gallery=gallery, content_hash=photo_hash, engine=gallery.engine).exists():
        raise _duplicate()


def _minor_check(profile: Profile) -> None:
    if profile_is_minor(profile) and profile.gallery.source_type != Gallery.SourceType.MISSING:
        raise EnrolmentSkipped(
            "The person is a minor (under 18 at enrolment): only missing-person galleries may hold minors.", "minor"
        )


def _duplicate() -> EnrolmentSkipped:
    return EnrolmentSkipped("The same photo is already enrolled in this gallery.", "duplicate")


def face_image_store(
    *, profile: Profile, analysed: AnalysedPhoto, source_name: str, enrolled_by: User | None = None
) -> EnrolResult:
    """Store an analysed photo as a face of the profile, or raise EnrolmentSkipped (minor, duplicate, erased)."""
    gallery = profile.gallery
    _enrolment_precheck(profile, analysed.content_hash)
    erased = tombstone_match(analysed, gallery.engine)
    if erased is not None:
        raise _tombstone_refusal(erased, gallery=gallery, source_name=source_name, enrolled_by=enrolled_by)
    face_image = _face_image_new(profile=profile, analysed=analysed, source_name=source_name, enrolled_by=enrolled_by)
    names = _media_store(face_image, analysed)
    try:
        _face_images_insert([(face_image, analysed.embedding)])
    except Exception:
        media_delete(*names)  # no orphaned file when the row cannot be written
        raise
    # Every path of a new gallery face passes here: compare it with the unsolved probes on the watch-list.
    watchlist.watchlist_check_enrolled_safely(face_image)
    return EnrolResult(face_image=face_image, faces_found=analysed.faces_found, notes=_notes(analysed))


def _tombstone_refusal(
    erased: TombstoneMatch, *, gallery: Gallery, source_name: str, enrolled_by: User | None
) -> EnrolmentSkipped:
    """The refusal of a photo of an erased face, recorded in the audit log (the privacy officer is told)."""
    audit_record(
        action=AuditEntry.Action.TOMBSTONE_HIT,
        actor=enrolled_by,
        agency=gallery.owner,
        target=gallery,
        detail=f"{source_name}: matches a face erased at a person's request ({erased.words})",
        data=erased.as_json(),
    )
    return EnrolmentSkipped(
        f"The face matches a face erased at the person's request (tombstone; {erased.words}): it is not "
        "enrolled again, and the privacy officer is told.",
        "tombstone",
    )


def _notes(analysed: AnalysedPhoto) -> list[str]:
    small_others = analysed.faces_found - 1
    if not small_others:
        return []
    return [
        f"{analysed.faces_found} faces in the photo; the largest was enrolled ({small_others} much smaller "
        "background face(s) left out)."
    ]


def _face_image_new(
    *, profile: Profile, analysed: AnalysedPhoto, source_name: str, enrolled_by: User | None
) -> FaceImage:
    """The row of a new face (not yet saved, its files not yet stored)."""
    gallery = profile.gallery
    return FaceImage(
        profile=profile,
        gallery=gallery,
        source_name=source_name,
        box=analysed.box,
        landmarks=analysed.landmarks,
        engine=gallery.engine,
        quality=analysed.quality,
        content_hash=analysed.content_hash,
        enrolled_by=enrolled_by,
        minor_at_enrolment=profile_is_minor(profile),
    )


def _face_images_insert(new_faces: list[tuple[FaceImage, object]]) -> None:
    """Write new faces' rows and their descriptors (face, embedding), together: a search never sees one without
    the other. The one place enrolment inserts them: two statements for a batch's chunk."""
    with transaction.atomic():
        FaceImage.objects.bulk_create([face for face, _ in new_faces])
        descriptors = [FaceDescriptor.of(face, embedding) for face, embedding in new_faces]
        FaceDescriptor.objects.bulk_create(descriptors)
    for (face, _), descriptor in zip(new_faces, descriptors, strict=True):
        face.descriptor = descriptor


def _media_store(face_image: FaceImage, analysed: AnalysedPhoto) -> tuple[str, str]:
    """Store the photo's re-encode and its crop; their names set on the row."""
    stem = f"{face_image.gallery.code}/{analysed.content_hash[:32]}"
    face_image.image = media_store(f"gallery/{stem}.jpg", analysed.image_jpeg)
    try:
        face_image.crop = media_store(f"crops/gallery/{stem}.jpg", analysed.crop_jpeg)
    except Exception:
        media_delete(face_image.image.name)  # no orphaned photo when its crop cannot be stored
        raise
    return face_image.image.name, face_image.crop.name


def face_described_with(engine_name: str, image, box) -> FoundFace | None:
    """The face another engine finds at the same place in the photo (photo_faces.same_face), or None.
    EngineNotAvailable when that engine is not installed."""
    return PhotoFaces(image, get_engine(engine_name)).find_at(box)


@dataclass(frozen=True)
class TombstoneMatch:
    """An erased face a new photo is a likely match of, and the decision that says so."""

    engine: str
    distance: float
    threshold: Threshold
    tombstone_id: int
    request_id: int | None

    @property
    def words(self) -> str:
        return (
            f"{self.engine}: distance {self.distance:.3f} under the likely-match threshold "
            f"{self.threshold.distance:.3f}"
        )

    def as_json(self) -> dict:
        return {
            "decision": LIKELY,
            "engine": self.engine,
            "distance": round(self.distance, 4),
            "threshold": self.threshold.as_json(),
            "tombstone_id": self.tombstone_id,
            "subject_request_id": self.request_id,
        }


def tombstone_match(analysed: AnalysedPhoto, engine_name: str) -> TombstoneMatch | None:
    """The erased face this photo's face is a likely match of, by any engine that holds erased faces, or None.

    An erasure describes each face with every installed engine, so a photo enrolled under one engine is still
    refused when the person was erased while their gallery used another. Each engine decides as a search does:
    its nearest erased face against its threshold calibrated to the number of erased faces it holds.
    """
    return tombstone_matches([analysed], engine_name)[0]


def tombstone_matches(photos: list[AnalysedPhoto], engine_name: str) -> list[TombstoneMatch | None]:
    """tombstone_match of each photo, with one query per engine that holds erased faces.

    The photo's own engine first: its descriptor is at hand, and a refusal there spares describing it again.
    Another engine's descriptor is the one the analysis made (AnalysedPhoto.other_faces) or, when the analysis was
    not asked for it, made here.
    """
    matches: list[TombstoneMatch | None] = [None] * len(photos)
    engines = set(Tombstone.objects.values_list("engine", flat=True).distinct()) & set(ENGINES)
    for name in sorted(engines, key=lambda name: (name != engine_name, name)):
        described = [
            (number, face)
            for number, photo in enumerate(photos)
            if matches[number] is None and (face := _described_by(photo, name, engine_name)) is not None
        ]
        if not described:
            continue
        nearest = index.nearest_tombstones([embedding for _, (embedding, _) in described], engine=name)
        threshold = None
        for (number, (_, quality)), hit in zip(described, nearest, strict=True):
            if hit is None:
                continue
            threshold = threshold or calibration.tombstone_threshold(engine=name)
            decision = face_decision(usable=quality_usable(quality), compared=[(hit.distance, threshold.distance)])
            if decision == LIKELY:
                matches[number] = TombstoneMatch(
                    engine=name,
                    distance=hit.distance,
                    threshold=threshold,
                    tombstone_id=hit.tombstone_id,
                    request_id=hit.request_id,
                )
    return matches


def _described_by(photo: AnalysedPhoto, name: str, own_engine: str) -> tuple | None:
    """(descriptor, quality) of the photo's face by that engine; None when it finds no face there or is not
    installed here (the other engines' tombstones still hold)."""
    if name == own_engine:
        return photo.embedding, photo.quality
    if name in photo.other_faces:
        face = photo.other_faces[name]
    elif name in photo.other_unavailable:
        return None
    else:
        try:
            face = face_described_with(name, stored_image(photo.image_jpeg), photo.box)
        except EngineNotAvailable:
            return None
    return None if face is None else (face.embedding, face.quality)


@dataclass
class EnrolmentItem:
    """One photo to enrol, with the profile it belongs to."""

    path: str
    display_name: str
    profile_fields: dict = field(default_factory=dict)
    source_name: str = ""  # shown to investigators; the file name when empty
    # Set by gallery_enrol_batch before it reports the item to `progress`: "enrolled", or the refusal's code.
    outcome: str = ""


@dataclass
class EnrolmentSummary:
    gallery: Gallery
    gallery_created: bool
    profiles: set = field(default_factory=set)
    faces_enrolled: int = 0
    skipped: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    seconds: float | None = None  # the whole batch, wall clock
    # Where the time went, in seconds: "analysis.<stage>" summed over the photos (on every analysing process),
    # "store.<stage>" in the process that stores.
    stage_seconds: dict = field(default_factory=dict)

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

    def timings_as_dict(self) -> dict:
        """How long the batch took (enroll_gallery --json adds these to as_dict's keys)."""
        return {
            "seconds": None if self.seconds is None else round(self.seconds, 2),
            "faces_per_second": round(self.faces_enrolled / self.seconds, 1) if self.seconds else None,
            "stage_seconds": {stage: round(value, 3) for stage, value in self.stage_seconds.items()},
        }


# Photos stored together: each query of the checks and the insert run once per chunk.
ENROL_CHUNK = 16


def gallery_enrol_batch(
    *,
    gallery: Gallery,
    gallery_created: bool,
    items: list[EnrolmentItem],
    enrolled_by: User | None = None,
    progress=None,
    workers: int = 1,
    chunk_size: int = ENROL_CHUNK,
) -> EnrolmentSummary:
    """Enrol many photos; each photo is enrolled whole or skipped with its reason, with the same decisions as
    face_image_store one photo after the other.

    With workers > 1 the photos are analysed on that many processes while this one stores them, in order, a
    chunk at a time. The analysis also describes each face with the other engines that hold erased faces, so
    that their tombstones are checked without describing it here. `progress(item)` after each photo is stored.
    """
    started = time.perf_counter()
    summary = EnrolmentSummary(gallery=gallery, gallery_created=gallery_created)
    other_engines = tuple(
        sorted(set(Tombstone.objects.values_list("engine", flat=True).distinct()) & set(ENGINES) - {gallery.engine})
    )
    analysed_items = analyse_files([item.path for item in items], gallery.engine, workers, other_engines)
    batch = _Batch(gallery=gallery, enrolled_by=enrolled_by, summary=summary)
    chunk: list = []
    try:
        for pair in zip(items, analysed_items, strict=True):
            chunk.append(pair)
            if len(chunk) >= chunk_size:
                batch.chunk_store(chunk, progress)
                chunk = []
        if chunk:
            batch.chunk_store(chunk, progress)
    except MediaUnavailable as exc:
        # The chunks enrolled before the store went away stay whole (and recorded); nothing else is kept.
        Profile.objects.filter(gallery=gallery, face_images__isnull=True).delete()
        if gallery_created and not summary.faces_enrolled:
            gallery.delete()
        else:
            _batch_record(gallery, gallery_created, summary, enrolled_by, stopped=str(exc))
        raise
    # A profile whose every photo was skipped holds nothing: do not keep an empty record.
    Profile.objects.filter(gallery=gallery, face_images__isnull=True).delete()
    _batch_record(gallery, gallery_created, summary, enrolled_by)
    summary.seconds = time.perf_counter() - started
    return summary


def _batch_record(
    gallery: Gallery, gallery_created: bool, summary: EnrolmentSummary, enrolled_by: User | None, stopped: str = ""
) -> None:
    audit_record(
        action=AuditEntry.Action.GALLERY_ENROLLED,
        actor=enrolled_by,
        agency=gallery.owner,
        target=gallery,
        detail=f"{summary.faces_enrolled} faces enrolled into {gallery.name}, {len(summary.skipped)} skipped"
        + (f"; stopped: {stopped}" if stopped else ""),
        data={
            "gallery_created": gallery_created,
            "profiles": len(summary.profiles),
            "faces_enrolled": summary.faces_enrolled,
            "skipped": len(summary.skipped),
        },
    )


@dataclass
class _Batch:
    """What storing a batch keeps from one chunk to the next: its profiles and the photos it enrolled."""

    gallery: Gallery
    enrolled_by: User | None
    summary: EnrolmentSummary
    profiles: dict = field(default_factory=dict)  # display name → Profile
    enrolled_hashes: set = field(default_factory=set)
    timings: dict = field(default_factory=dict)  # milliseconds per stage of storing

    def chunk_store(self, chunk: list[tuple[EnrolmentItem, AnalysedPhoto | EnrolmentSkipped]], progress) -> None:
        """Decide every photo of the chunk as face_image_store would, one after the other, then write the enrolled
        ones in one statement and, in the photos' order, the refusals' audit entries and the watch-list alerts."""
        gallery, timings = self.gallery, self.timings
        for _, analysed in chunk:
            for stage, ms in getattr(analysed, "timings", {}).items():
                key = f"analysis.{stage}"
                self.summary.stage_seconds[key] = self.summary.stage_seconds.get(key, 0.0) + ms / 1000
        photos = [
            (number, analysed) for number, (_, analysed) in enumerate(chunk) if isinstance(analysed, AnalysedPhoto)
        ]
        with timed(timings, "prechecks"):
            for item, analysed in chunk:
                if isinstance(analysed, AnalysedPhoto) and item.display_name not in self.profiles:
                    self.profiles[item.display_name] = profile_get_or_create(
                        gallery=gallery, display_name=item.display_name, **item.profile_fields
                    )
            enrolled_already = set(
                FaceImage.objects.filter(
                    gallery=gallery, engine=gallery.engine, content_hash__in=[a.content_hash for _, a in photos]
                ).values_list("content_hash", flat=True)
            )
        with timed(timings, "tombstones"):
            erased = dict(
                zip(
                    [number for number, _ in photos],
                    tombstone_matches([analysed for _, analysed in photos], gallery.engine),
                    strict=True,
                )
            )
        decisions: list[EnrolmentSkipped | TombstoneMatch | FaceImage] = []
        for number, (item, analysed) in enumerate(chunk):
            decisions.append(self._decision(item, analysed, enrolled_already, erased.get(number)))
        new_faces = [
            (face, analysed)
            for (_, analysed), face in zip(chunk, decisions, strict=True)
            if isinstance(face, FaceImage)
        ]
        names: list[str] = []
        try:
            with timed(timings, "files"):
                for face, analysed in new_faces:
                    names += _media_store(face, analysed)
            with transaction.atomic():
                with timed(timings, "insert"):
                    _face_images_insert([(face, analysed.embedding) for face, analysed in new_faces])
                now = timezone.now()
                with timed(timings, "watchlist"):
                    descriptors = watchlist.watchlist_descriptors_compared(
                        gallery=gallery, engine=gallery.engine, now=now
                    )
                for (item, analysed), decision in zip(chunk, decisions, strict=True):
                    if isinstance(decision, TombstoneMatch):
                        with timed(timings, "tombstones"):
                            decision = _tombstone_refusal(
                                decision,
                                gallery=gallery,
                                source_name=self._source_name(item),
                                enrolled_by=self.enrolled_by,
                            )
                    elif isinstance(decision, FaceImage):
                        with timed(timings, "watchlist"):
                            watchlist.watchlist_check_enrolled_safely(decision, descriptors=descriptors, now=now)
                    self._count(item, analysed, decision)
        except Exception:
            media_delete(*names)  # no orphaned file when the files or the rows cannot all be written
            raise
        for item, _ in chunk:
            if progress is not None:
                progress(item)
        for stage, ms in timings.items():
            self.summary.stage_seconds[f"store.{stage}"] = ms / 1000

    def _decision(self, item, analysed, enrolled_already: set, erased: TombstoneMatch | None):
        """The refusal (EnrolmentSkipped, or the TombstoneMatch to record), or the new face's row (unsaved)."""
        if isinstance(analysed, EnrolmentSkipped):
            return analysed
        profile = self.profiles[item.display_name]
        try:
            _minor_check(profile)
        except EnrolmentSkipped as exc:
            return exc
        if analysed.content_hash in enrolled_already or analysed.content_hash in self.enrolled_hashes:
            return _duplicate()
        if erased is not None:
            return erased
        self.enrolled_hashes.add(analysed.content_hash)
        return _face_image_new(
            profile=profile, analysed=analysed, source_name=self._source_name(item), enrolled_by=self.enrolled_by
        )

    @staticmethod
    def _source_name(item: EnrolmentItem) -> str:
        return item.source_name or os.path.basename(item.path)

    def _count(self, item: EnrolmentItem, analysed, decision) -> None:
        summary = self.summary
        if isinstance(decision, EnrolmentSkipped):
            item.outcome = decision.code
            summary.skipped.append({"file": item.path, "reason": str(decision), "code": decision.code})
            return
        item.outcome = "enrolled"
        summary.faces_enrolled += 1
        summary.profiles.add(decision.profile_id)
        summary.notes += [{"file": item.path, "note": note} for note in _notes(analysed)]


class GalleryRefused(ValueError):
    """The gallery an upload names cannot take it, with the form field the reason belongs to."""

    def __init__(self, message: str, field: str):
        super().__init__(message, field)
        self.field = field

    def __str__(self) -> str:
        return self.args[0]


@dataclass
class UploadEnrolment:
    """What an upload of photos of one person did: each photo's result, and whether its gallery was kept."""

    gallery: Gallery
    kept: bool
    results: list[dict]  # {"file", "ok"} and, when refused, "reason" and "code"

    @property
    def enrolled(self) -> int:
        return sum(result["ok"] for result in self.results)


def gallery_photos_enrol(
    *,
    enrolled_by: User,
    gallery: Gallery | None,
    photos: list,
    display_name: str,
    date_of_birth: date | None = None,
    record_reference: str = "",
    new_name: str = "",
    legal_basis: str = "",
    legal_basis_reference: str = "",
    source_type: str = "",
    responsible_person: str = "",
    retention_days: int | None = None,
    ip_address: str | None = None,
) -> UploadEnrolment:
    """Enrol uploaded photos of one person into a gallery of the user's agency (a new one when `gallery` is None,
    from its name and provenance); raise GalleryRefused when there is no gallery to enrol into.

    A new gallery that receives nothing is not kept, nor a profile without a face.
    """
    try:
        gallery, created = (
            (gallery, False)
            if gallery
            else gallery_get_or_create(
                owner=enrolled_by.agency,
                name=new_name.strip() or "",
                legal_basis=legal_basis,
                legal_basis_reference=legal_basis_reference,
                source_type=source_type,
                responsible_person=responsible_person,
                retention_days=retention_days,
            )
        )
    except EnrolmentSkipped as exc:
        raise GalleryRefused(str(exc), "gallery") from None
    if not gallery.name:
        raise GalleryRefused("Name the new gallery.", "new_name")
    profile = profile_get_or_create(
        gallery=gallery,
        display_name=display_name.strip(),
        date_of_birth=date_of_birth,
        record_reference=record_reference,
    )
    results = []
    try:
        for upload in photos:
            try:
                photo_size_check(upload.size)  # before the file is read into memory
                # The name is the sender's: kept for the record (cut to the column), never used as a path.
                face_image_enrol(
                    profile=profile, data=upload.read(), source_name=upload.name[:255], enrolled_by=enrolled_by
                )
            except PhotoRejected as exc:
                results.append({"file": upload.name, "ok": False, "reason": str(exc), "code": "unreadable"})
            except EnrolmentSkipped as exc:
                results.append({"file": upload.name, "ok": False, "reason": str(exc), "code": exc.code})
            else:
                results.append({"file": upload.name, "ok": True})
    except MediaUnavailable as exc:
        # The store went away: the photos enrolled before stay whole and recorded; nothing else is kept.
        stopped = exc
    else:
        stopped = None
    enrolled = sum(result["ok"] for result in results)
    if not profile.face_images.exists():
        profile.delete()  # nothing enrolled: no empty record
    if stopped is not None and not enrolled:
        if created:
            gallery.delete()
        raise stopped
    kept = bool(enrolled or not created)
    audit_record(
        action=AuditEntry.Action.GALLERY_ENROLLED,
        actor=enrolled_by,
        target=gallery if kept else None,
        ip_address=ip_address,
        detail=f"{enrolled} faces enrolled into {gallery.name}, {len(results) - enrolled} skipped"
        + ("" if kept else " (the new gallery was not kept)")
        + (f"; stopped: {stopped}" if stopped else ""),
        data={"gallery_created": created and kept, "faces_enrolled": enrolled, "skipped": len(results) - enrolled},
    )
    if not kept:
        gallery.delete()  # a new gallery that received nothing is not left behind empty
    if stopped is not None:
        raise stopped
    return UploadEnrolment(gallery=gallery, kept=kept, results=results)
