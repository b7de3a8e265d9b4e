"""The writes of enrolment: galleries and profiles, the refusals that need the database (a minor, a photo
enrolled already, an erased face), storing an analysed photo, a batch, and the galleries page's upload."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from datetime import date

from django.conf import settings
from django.utils import timezone
from PIL import Image

from accounts.models import Agency, User
from portal.audit import audit_record
from portal.models import AuditEntry
from search import calibration, index, watchlist
from search.enrolment.analysis import AnalysedPhoto, EnrolmentSkipped, analyse_files, content_hash, enrolment_analyse
from search.faces import ENGINES, EngineNotAvailable, get_engine, quality_usable
from search.imaging import PhotoRejected, photo_size_check
from search.models import FaceImage, Gallery, Profile, Tombstone
from search.open_set import LIKELY, Threshold, face_decision
from search.photo_faces import FoundFace, PhotoFaces, same_face
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
    if profile_is_minor(profile) and gallery.source_type != Gallery.SourceType.MISSING:
        raise EnrolmentSkipped(
            "The person is a minor (under 18 at enrolment): only missing-person galleries may hold minors.", "minor"
        )
    if FaceImage.objects.filter(gallery=gallery, content_hash=photo_hash, engine=gallery.engine).exists():
        raise EnrolmentSkipped("The same photo is already enrolled in this gallery.", "duplicate")


def face_image_store(
    *, profile: Profile, analysed: AnalysedPhoto, source_name: str, enrolled_by: User | None = None
) -> EnrolResult:
    """Store an analysed photo as a face of the profile, or raise EnrolmentSkipped (minor, duplicate, erased)."""
    gallery = profile.gallery
    _enrolment_precheck(profile, analysed.content_hash)
    engine_name = gallery.engine
    erased = tombstone_match(analysed, engine_name)
    if erased is not None:
        audit_record(
            action=AuditEntry.Action.TOMBSTONE_HIT,
            actor=enrolled_by,
            agency=gallery.owner,
            target=gallery,
            detail=f"{source_name}: matches a face erased at a person's request ({erased.words})",
            data=erased.as_json(),
        )
        raise EnrolmentSkipped(
            f"The face matches a face erased at the person's request (tombstone; {erased.words}): it is not "
            "enrolled again, and the privacy officer is told.",
            "tombstone",
        )
    small_others = analysed.faces_found - 1
    notes = (
        [
            f"{analysed.faces_found} faces in the photo; the largest was enrolled ({small_others} much smaller "
            "background face(s) left out)."
        ]
        if small_others
        else []
    )

    stem = f"{gallery.code}/{analysed.content_hash[:32]}"
    image_name = media_store(f"gallery/{stem}.jpg", analysed.image_jpeg)
    crop_name = ""
    try:
        crop_name = media_store(f"crops/gallery/{stem}.jpg", analysed.crop_jpeg)
        face_image = FaceImage.objects.create(
            profile=profile,
            gallery=gallery,
            image=image_name,
            crop=crop_name,
            source_name=source_name,
            box=analysed.box,
            landmarks=analysed.landmarks,
            embedding=analysed.embedding,
            engine=engine_name,
            quality=analysed.quality,
            content_hash=analysed.content_hash,
            enrolled_by=enrolled_by,
            minor_at_enrolment=profile_is_minor(profile),
        )
    except Exception:
        media_delete(image_name, crop_name)  # no orphaned file when the crop or the row cannot be written
        raise
    # Every path of a new gallery face passes here: compare it with the unsolved probes on the watch-list.
    watchlist.watchlist_check_enrolled_safely(face_image)
    return EnrolResult(face_image=face_image, faces_found=analysed.faces_found, notes=notes)


def stored_image(data: bytes) -> Image.Image:
    """A photo the portal stored itself (its clean re-encode), decoded: it passed the intake checks once already,
    and their size limit applies to what was sent, not to the re-encode."""
    with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
        return image.convert("RGB")


def face_described_with(engine_name: str, image, box) -> FoundFace | None:
    """The face another engine finds at the same place in the photo (photo_faces.same_face), or None.
    EngineNotAvailable when that engine is not installed."""
    return same_face(box, PhotoFaces(image, get_engine(engine_name)).find())


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
    engines = set(Tombstone.objects.values_list("engine", flat=True).distinct()) & set(ENGINES)
    image = None
    # The photo's own engine first: its descriptor is at hand, and a refusal there spares describing it again.
    for name in sorted(engines, key=lambda name: (name != engine_name, name)):
        if name == engine_name:
            embedding, quality = analysed.embedding, analysed.quality
        else:
            try:
                if image is None:
                    image = stored_image(analysed.image_jpeg)
                face = face_described_with(name, image, analysed.box)
            except EngineNotAvailable:
                continue  # this installation cannot describe with it; the other engines' tombstones still hold
            if face is None:
                continue
            embedding, quality = face.embedding, face.quality
        nearest = index.nearest_tombstone(embedding, engine=name)
        if nearest is None:
            continue
        threshold = calibration.tombstone_threshold(engine=name)
        decision = face_decision(usable=quality_usable(quality), compared=[(nearest.distance, threshold.distance)])
        if decision == LIKELY:
            return TombstoneMatch(
                engine=name,
                distance=nearest.distance,
                threshold=threshold,
                tombstone_id=nearest.tombstone_id,
                request_id=nearest.request_id,
            )
    return None


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


def gallery_enrol_batch(
    *,
    gallery: Gallery,
    gallery_created: bool,
    items: list[EnrolmentItem],
    enrolled_by: User | None = None,
    progress=None,
    workers: int = 1,
) -> EnrolmentSummary:
    """Enrol many photos; each photo is enrolled whole or skipped with its reason.

    With workers > 1 the photos are analysed on that many processes while this one stores them, in order.
    """
    summary = EnrolmentSummary(gallery=gallery, gallery_created=gallery_created)
    analysed_items = analyse_files([item.path for item in items], gallery.engine, workers)
    try:
        for item, analysed in zip(items, analysed_items, strict=True):
            try:
                if isinstance(analysed, EnrolmentSkipped):
                    raise analysed
                profile = profile_get_or_create(gallery=gallery, display_name=item.display_name, **item.profile_fields)
                result = face_image_store(
                    profile=profile,
                    analysed=analysed,
                    enrolled_by=enrolled_by,
                    source_name=item.source_name or os.path.basename(item.path),
                )
            except EnrolmentSkipped as exc:
                summary.skipped.append({"file": item.path, "reason": str(exc), "code": exc.code})
            else:
                summary.faces_enrolled += 1
                summary.profiles.add(profile.id)
                summary.notes += [{"file": item.path, "note": note} for note in result.notes]
            if progress is not None:
                progress(item)
    except MediaUnavailable as exc:
        # The photos enrolled before the store went away stay whole (and recorded); nothing else is kept.
        Profile.objects.filter(gallery=gallery, face_images__isnull=True).delete()
        if gallery_created and not summary.faces_enrolled:
            gallery.delete()
        else:
            _batch_record(gallery, gallery_created, summary, enrolled_by, stopped=str(exc))
        raise
    # A profile whose every photo was skipped holds nothing: do not keep an empty record.
    Profile.objects.filter(gallery=gallery, face_images__isnull=True).delete()
    _batch_record(gallery, gallery_created, summary, enrolled_by)
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
