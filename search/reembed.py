"""Re-computing a gallery's descriptors with another engine, resumably, then switching in one transaction.

Until the switch the gallery is searched with its old engine; the new descriptors sit beside the old
ones (one row per photo and engine), so there is no moment where the gallery returns nothing. Moving a
whole deployment (galleries_reembed) is the same, gallery after gallery: each switches on its own once
complete, and a second run does only what is left.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.files.storage import default_storage
from django.db import transaction

from portal.audit import audit_record
from portal.models import AuditEntry
from search.faces import get_engine
from search.imaging import decode_photo
from search.models import FaceDescriptor, FaceImage, Gallery
from search.photo_faces import PhotoFaces, same_face
from search.storage import media_store
from search.watchlist import watchlist_descriptors_for_gallery


@dataclass
class ReembedSummary:
    gallery: Gallery
    engine: str
    described: int = 0
    already: int = 0
    skipped: list = field(default_factory=list)
    switched: bool = False
    already_on_engine: bool = False  # searched with the engine before this run: nothing was done


def pending_faces(gallery: Gallery, engine_name: str):
    done = FaceImage.objects.filter(gallery=gallery, engine=engine_name).values("content_hash")
    return (
        FaceImage.objects.filter(gallery=gallery, engine=gallery.engine)
        .exclude(content_hash__in=done)
        .select_related("profile")
        .order_by("id")
    )


def gallery_reembed(*, gallery: Gallery, engine_name: str, progress=None) -> ReembedSummary:
    """Describe every photo of the gallery with the engine (skipping those already done), then switch."""
    engine = get_engine(engine_name)  # EngineNotAvailable when it is not installed
    summary = ReembedSummary(gallery=gallery, engine=engine_name)
    if gallery.engine == engine_name:
        summary.switched = summary.already_on_engine = True
        return summary
    summary.already = FaceImage.objects.filter(gallery=gallery, engine=engine_name).count()
    for face in pending_faces(gallery, engine_name).iterator():
        with default_storage.open(face.image.name, "rb") as stored:
            photo = decode_photo(stored.read())
        photo_faces = PhotoFaces(photo.image, engine)
        found = photo_faces.find()
        # The same person: the new engine's face that overlaps the enrolled box most.
        match = same_face(face.box, found)
        if match is None:
            summary.skipped.append({"file": face.source_name, "reason": f"{engine_name} finds no matching face"})
        else:
            # FileField names hold at most 100 characters.
            crop = media_store(
                f"crops/gallery/{gallery.code}/{face.content_hash[:20]}-{engine_name}.jpg", photo_faces.crop_jpeg(match)
            )
            with transaction.atomic():
                described = FaceImage.objects.create(
                    profile=face.profile,
                    gallery=gallery,
                    image=face.image.name,
                    crop=crop,
                    source_name=face.source_name,
                    box=match.box,
                    landmarks=match.landmarks,
                    engine=engine_name,
                    quality=match.quality,
                    minor_at_enrolment=face.minor_at_enrolment,
                    content_hash=face.content_hash,
                    enrolled_by=face.enrolled_by,
                )
                FaceDescriptor.of(described, match.embedding).save(force_insert=True)
            summary.described += 1
        if progress is not None:
            progress(face)
    if summary.skipped:
        return summary  # not complete: the gallery keeps its old engine
    with transaction.atomic():
        locked = Gallery.objects.select_for_update().get(pk=gallery.pk)
        if not pending_faces(locked, engine_name).exists():
            previous = locked.engine
            Gallery.objects.filter(pk=gallery.pk).update(engine=engine_name)
            audit_record(
                action=AuditEntry.Action.GALLERY_REEMBEDDED,
                agency=gallery.owner,
                target=gallery,
                detail=f"{gallery.name}: {previous} → {engine_name}",
            )
            summary.switched = True
    gallery.refresh_from_db()
    if summary.switched:
        # The watch-list entries of the agencies searching this gallery compare with its new engine from now.
        watchlist_descriptors_for_gallery(gallery)
    return summary


def galleries_pending(engine_name: str):
    """The galleries not yet searched with the engine, in the order galleries_reembed takes them."""
    return Gallery.objects.exclude(engine=engine_name).select_related("owner").order_by("id")


def galleries_reembed(*, engine_name: str, progress=None) -> list[ReembedSummary]:
    """Re-embed every gallery with the engine, one after the other (by id); one summary per gallery.

    Each gallery switches in its own transaction when complete, so an interruption leaves the finished ones
    switched and the others searched with their old engine; a gallery that cannot switch (a photo the
    engine finds no face in) keeps its old one and the others go on.
    """
    get_engine(engine_name)  # EngineNotAvailable before any gallery is touched
    return [
        gallery_reembed(gallery=gallery, engine_name=engine_name, progress=progress)
        for gallery in Gallery.objects.select_related("owner").order_by("id")
    ]
