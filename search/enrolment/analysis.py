"""The CPU work of enrolling a gallery photo (decode, detect, describe, check, crop), apart from the writes,
so that a batch can spread it over every core: worker processes analyse, the calling process stores.

Nothing here touches the database, so the worker processes need no connection.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context

import django
import numpy as np
from django.conf import settings

from search.faces import get_engine
from search.imaging import PhotoRejected, decode_photo, encode_jpeg
from search.photo_faces import FoundFace, PhotoFaces


class EnrolmentSkipped(ValueError):
    """A gallery photo that was not enrolled, with the reason and a short code to count reasons by."""

    def __init__(self, message: str, code: str = "refused"):
        super().__init__(message, code)
        self.code = code

    def __str__(self) -> str:
        return self.args[0]


@dataclass(frozen=True)
class AnalysedPhoto:
    """Everything enrolment stores about a photo, computed without the database."""

    content_hash: str
    image_jpeg: bytes  # the clean re-encode that is stored
    crop_jpeg: bytes
    box: list[int]
    landmarks: list[list[float]]
    embedding: np.ndarray
    quality: dict
    faces_found: int


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def enrolment_quality_gate(faces: list) -> FoundFace:
    """The face to enrol, or EnrolmentSkipped: no face, too small, ambiguous, or too blurred.

    The limits are settings chosen from the shared labelled photos (docs/quality-gate.md).
    """
    if not faces:
        raise EnrolmentSkipped("No face found in the photo.", "no_face")
    ranked = sorted(faces, key=lambda face: face.width, reverse=True)
    largest = ranked[0]
    if largest.width < settings.ENROL_MIN_FACE_PX:
        raise EnrolmentSkipped(
            f"The face is too small ({largest.width} px wide; at least "
            f"{settings.ENROL_MIN_FACE_PX} px at the photo's own resolution).",
            "too_small",
        )
    if len(ranked) > 1 and ranked[1].width >= settings.ENROL_AMBIGUOUS_RATIO * largest.width:
        raise EnrolmentSkipped(
            f"Two faces of similar size ({largest.width} and {ranked[1].width} px): which person "
            "is meant is ambiguous. Crop the photo to one face.",
            "ambiguous",
        )
    if largest.quality["sharpness"] < settings.ENROL_MIN_SHARPNESS:
        raise EnrolmentSkipped(
            f"The face is too blurred (sharpness {largest.quality['sharpness']:.0f}, at least "
            f"{settings.ENROL_MIN_SHARPNESS:.0f}).",
            "blurred",
        )
    return largest


def enrolment_faces(faces_in_photo: PhotoFaces) -> list:
    """The faces the quality gate needs, found the quick way when that cannot change its answer.

    Gallery photos mostly show one large face. An engine's quick detection (dlib: HOG without upsampling,
    about 4× faster) misses only faces narrower than its `quick_min_face_px`; when the largest face found
    is wide enough that any face the ambiguity rule cares about (≥ ENROL_AMBIGUOUS_RATIO of it) would
    also have been found, the quick result stands. Otherwise the photo is looked at again in full.
    """
    engine = faces_in_photo.engine
    quick_min = getattr(engine, "quick_min_face_px", None)
    if quick_min:
        faces = faces_in_photo.find(quick=True)
        if faces and max(face.detected.width for face in faces) * settings.ENROL_AMBIGUOUS_RATIO >= quick_min:
            return faces
    return faces_in_photo.find()


def enrolment_analyse(data: bytes, engine_name: str) -> AnalysedPhoto:
    """Decode, detect, describe and check one gallery photo; raise EnrolmentSkipped with the reason."""
    try:
        photo = decode_photo(data)
    except PhotoRejected as exc:
        raise EnrolmentSkipped(str(exc), "unreadable") from None
    faces_in_photo = PhotoFaces(photo.image, get_engine(engine_name))
    faces = enrolment_faces(faces_in_photo)
    largest = enrolment_quality_gate(faces)
    return AnalysedPhoto(
        content_hash=photo.content_hash,
        image_jpeg=encode_jpeg(photo.image),
        crop_jpeg=faces_in_photo.crop_jpeg(largest),
        box=largest.box,
        landmarks=largest.landmarks,
        embedding=largest.embedding,
        quality=largest.quality,
        faces_found=len(faces),
    )


def analyse_file(path: str, engine_name: str) -> AnalysedPhoto | EnrolmentSkipped:
    """enrolment_analyse on a file, the refusal returned rather than raised (it crosses a process boundary)."""
    try:
        with open(path, "rb") as photo_file:
            data = photo_file.read(settings.UPLOAD_MAX_BYTES + 1)
    except OSError as exc:
        return EnrolmentSkipped(f"The file could not be read: {exc.strerror}.", "unreadable")
    try:
        return enrolment_analyse(data, engine_name)
    except EnrolmentSkipped as exc:
        return exc


def analyse_files(paths: list[str], engine_name: str, workers: int):
    """analyse_file over many files, in order, on `workers` processes (in this process when 1)."""
    if workers <= 1 or len(paths) < 2:
        for path in paths:
            yield analyse_file(path, engine_name)
        return
    # spawn, not fork: OpenCV's and dlib's thread pools do not survive a fork. Each worker sets Django up
    # before it unpickles its first call: importing search.enrolment loads the models.
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=django.setup) as pool:
        yield from pool.map(analyse_file, paths, [engine_name] * len(paths), chunksize=1)
