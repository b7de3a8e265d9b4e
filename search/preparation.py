"""Probe preparation: the recorded edits of a probe before its search, and the faces found on the result.

The original photo is never changed. Each edit is recorded (ProbeEdit: what, by whom, the image's hash
before and after) and the prepared copy is rendered again from the original and the whole list, so that
edits do not pile up JPEG losses and the record says exactly how the searched image was made.
"""

from __future__ import annotations

import hashlib
import io
import math

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from PIL import Image, ImageEnhance

from accounts.models import User
from portal.audit import audit_record
from portal.models import AuditEntry, Case
from search import publish
from search.faces import get_engine, quality_usable
from search.imaging import encode_jpeg
from search.models import Probe, ProbeEdit
from search.photo_faces import PhotoFaces
from search.storage import media_delete, media_store

# A crop smaller than this is not a face photo any more.
MIN_SIDE_PX = 32
BRIGHTNESS_RANGE = CONTRAST_RANGE = (0.2, 3.0)


class EditRefused(ValueError):
    """An edit that cannot be made, with the reason."""


# --- Reading and rendering ------------------------------------------------------------------------


def image_version(probe: Probe) -> str:
    """Names the image a search of the probe would read now: the prepared copy's hash, or the original's."""
    return probe.prepared_hash or probe.content_hash


def _open_stored(field) -> Image.Image:
    with default_storage.open(field.name, "rb") as stored:
        image = Image.open(io.BytesIO(stored.read()))
        image.load()
    return image.convert("RGB")


def _apply(image: Image.Image, operation: str, parameters: dict) -> Image.Image:
    if operation == ProbeEdit.Operation.CROP:
        x, y, w, h = (parameters[k] for k in ("x", "y", "width", "height"))
        return image.crop((x, y, x + w, y + h))
    if operation == ProbeEdit.Operation.ROTATE:
        degrees = parameters["degrees"] % 360
        exact = {90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_90}
        if degrees == 0:
            return image
        if degrees in exact:  # quarter turns move pixels exactly, without resampling
            return image.transpose(exact[degrees])
        # Clockwise for people; Pillow turns counter-clockwise.
        return image.rotate(-degrees, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(0, 0, 0))
    if operation == ProbeEdit.Operation.ADJUST:
        image = ImageEnhance.Brightness(image).enhance(parameters["brightness"])
        return ImageEnhance.Contrast(image).enhance(parameters["contrast"])
    raise ValueError(operation)


def _render(original: Image.Image, edits: list[tuple[str, dict]]) -> Image.Image:
    """The original with the edits applied in order; a reset starts again from the original."""
    image = original
    for operation, parameters in edits:
        image = original if operation == ProbeEdit.Operation.RESET else _apply(image, operation, parameters)
    return image


def image_size(probe: Probe) -> tuple[int, int]:
    """Width and height of the image to be searched, read from its header only."""
    with default_storage.open(probe.searched_image.name, "rb") as stored:
        return Image.open(stored).size


def working_image(probe: Probe) -> Image.Image:
    """The image as it stands now: the prepared copy, or the original."""
    return _open_stored(probe.searched_image)


def preview_face_jpeg(probe: Probe, number: int) -> bytes | None:
    """A thumbnail of a face found on the image to be searched, with some margin (not aligned)."""
    faces = probe.preview_faces if probe.preview_hash == image_version(probe) else []
    if not 1 <= number <= len(faces) or not probe.searched_image:
        return None
    x, y, w, h = faces[number - 1]["box"]
    image = working_image(probe)
    margin = round(max(w, h) * 0.35)
    box = (max(0, x - margin), max(0, y - margin), min(image.width, x + w + margin), min(image.height, y + h + margin))
    thumb = image.crop(box)
    thumb.thumbnail((240, 240))
    return encode_jpeg(thumb, quality=88)


# --- The faces found, computed by a worker --------------------------------------------------------


def probe_preview_run(*, probe_id: int) -> None:
    """Find the faces on the probe's current image for the officer to choose from. Safe to run twice; a
    result for an image that was edited meanwhile is dropped (the edit queued its own run)."""
    probe = Probe.objects.filter(pk=probe_id).first()
    if probe is None or not probe.searched_image or probe.jobs.exists():
        return
    version = image_version(probe)
    if probe.preview_hash == version:
        return
    image = working_image(probe)
    engine = get_engine(settings.FACE_ENGINE)
    faces = PhotoFaces(image, engine).find(sensitive=bool(probe.pending_search.get("sensitive")))
    found = [
        {
            "number": number,
            "box": face.box,
            "usable": quality_usable(face.quality),
            "below": face.quality.get("below", []),
            "eye_distance_px": face.quality.get("described_eye_distance_px") or face.quality.get("eye_distance_px"),
            "sharpness": face.quality.get("sharpness"),
        }
        for number, face in enumerate(faces, start=1)
    ]
    Probe.objects.filter(pk=probe_id, prepared_hash=probe.prepared_hash).update(
        preview_faces=found, preview_hash=version
    )


def probe_preview_queue(probe_id: int) -> None:
    publish.probe_preview.apply_async((probe_id,))


# --- Edits ----------------------------------------------------------------------------------------


def _number(value, what: str, *, whole: bool) -> float:
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        raise EditRefused(f"{what} must be a number (got {str(value)[:20]!r}).") from None
    if not math.isfinite(number):
        raise EditRefused(f"{what} must be a finite number.")
    if whole:
        if number != int(number):
            raise EditRefused(f"{what} must be a whole number of pixels.")
        return int(number)
    return number


def edit_parameters(operation: str, values: dict, *, width: int, height: int) -> dict:
    """The checked parameters of an edit of an image of width × height; raises EditRefused."""
    if operation == ProbeEdit.Operation.CROP:
        labels = {
            "x": "The crop's left edge",
            "y": "The crop's top edge",
            "width": "The crop's width",
            "height": "The crop's height",
        }
        x, y, w, h = (_number(values.get(key), label, whole=True) for key, label in labels.items())
        if w < MIN_SIDE_PX or h < MIN_SIDE_PX:
            raise EditRefused(f"The crop must be at least {MIN_SIDE_PX}×{MIN_SIDE_PX} pixels (got {w}×{h}).")
        if x < 0 or y < 0 or x + w > width or y + h > height:
            raise EditRefused(
                f"The crop ({w}×{h} at {x}, {y}) reaches outside the photo, which is {width}×{height} pixels."
            )
        if (w, h) == (width, height):
            raise EditRefused("The crop is the whole photo: nothing to cut.")
        return {"x": x, "y": y, "width": w, "height": h}
    if operation == ProbeEdit.Operation.ROTATE:
        degrees = _number(values.get("degrees"), "The rotation", whole=False)
        if not -360 < degrees < 360 or degrees % 360 == 0:
            raise EditRefused("Rotate by a number of degrees between −359 and 359, other than 0.")
        return {"degrees": round(degrees, 2)}
    if operation == ProbeEdit.Operation.ADJUST:
        brightness = _number(values.get("brightness", 1), "The brightness", whole=False)
        contrast = _number(values.get("contrast", 1), "The contrast", whole=False)
        for value, name, (low, high) in (
            (brightness, "brightness", BRIGHTNESS_RANGE),
            (contrast, "contrast", CONTRAST_RANGE),
        ):
            if not low <= value <= high:
                raise EditRefused(f"The {name} must be between {low} and {high} (1 leaves it as it is).")
        if brightness == 1 and contrast == 1:
            raise EditRefused("Brightness and contrast are both 1: nothing to change.")
        return {"brightness": round(brightness, 3), "contrast": round(contrast, 3)}
    if operation == ProbeEdit.Operation.RESET:
        return {}
    raise EditRefused("Choose an edit: crop, rotate, brightness and contrast, or back to the original.")


def edit_allowed(probe: Probe, user: User) -> None:
    if user.agency_id is None or probe.agency_id != user.agency_id:
        raise EditRefused("Only officers of the probe's agency prepare it.")
    if probe.jobs.exists():
        raise EditRefused("This photo was already searched: edits are made before the search, never after it.")
    if probe.case.status != Case.Status.OPEN:
        raise EditRefused(f"Case {probe.case.number} is closed; reopen it to prepare a search.")
    if not probe.image:
        raise EditRefused("The probe photo is no longer held.")


def probe_edit_apply(
    *, probe: Probe, user: User, operation: str, values: dict, ip_address: str | None = None
) -> ProbeEdit:
    """Record one edit and render the prepared copy again from the original; raises EditRefused."""
    edit_allowed(probe, user)
    with default_storage.open(probe.image.name, "rb") as stored:
        original_bytes = stored.read()
    original = Image.open(io.BytesIO(original_bytes)).convert("RGB")
    edits = [(e.operation, e.parameters) for e in probe.edits.order_by("number")]
    current = _render(original, edits)
    if operation == ProbeEdit.Operation.RESET and not probe.prepared_image:
        raise EditRefused("The photo is already as it was uploaded.")
    parameters = edit_parameters(operation, values, width=current.width, height=current.height)
    hash_before = probe.prepared_hash or hashlib.sha256(original_bytes).hexdigest()
    new_name = ""
    if operation == ProbeEdit.Operation.RESET:
        hash_after = hashlib.sha256(original_bytes).hexdigest()
    else:
        result = _apply(current, operation, parameters)
        if result.width * result.height > settings.UPLOAD_MAX_PIXELS:
            raise EditRefused(f"The edited photo would have more than {settings.UPLOAD_MAX_PIXELS:,} pixels.")
        data = encode_jpeg(result)
        hash_after = hashlib.sha256(data).hexdigest()
        new_name = media_store(
            f"probes/{probe.agency.code}/{probe.code.hex[:16]}-e{len(edits) + 1}-{timezone.now():%H%M%S%f}.jpg", data
        )
    old_name = probe.prepared_image.name if probe.prepared_image else ""
    try:
        with transaction.atomic():
            locked = Probe.objects.select_for_update().get(pk=probe.pk)
            if locked.jobs.exists() or locked.prepared_hash != probe.prepared_hash:
                raise EditRefused("The photo changed meanwhile (another edit, or its search started): look again.")
            number = (locked.edits.order_by("-number").values_list("number", flat=True).first() or 0) + 1
            edit = ProbeEdit.objects.create(
                probe=locked,
                number=number,
                operation=operation,
                parameters=parameters,
                made_by=user,
                hash_before=hash_before,
                hash_after=hash_after,
                created_at=timezone.now(),
            )
            Probe.objects.filter(pk=probe.pk).update(
                prepared_image=new_name,
                prepared_hash="" if operation == ProbeEdit.Operation.RESET else hash_after,
                preview_faces=[],
                preview_hash="",
            )
            audit_record(
                action=AuditEntry.Action.PROBE_EDITED,
                actor=user,
                case=probe.case,
                target=probe,
                ip_address=ip_address,
                detail=f"{edit.get_operation_display()} {parameters}" if parameters else edit.get_operation_display(),
                data={
                    "probe": str(probe.code),
                    "edit": number,
                    "operation": operation,
                    "parameters": parameters,
                    "hash_before": hash_before,
                    "hash_after": hash_after,
                },
            )
            probe_id = probe.pk
            transaction.on_commit(lambda: probe_preview_queue(probe_id))
            if old_name:
                transaction.on_commit(lambda: media_delete(old_name))
    except Exception:
        if new_name:
            media_delete(new_name)
        raise
    probe.refresh_from_db()
    return edit
