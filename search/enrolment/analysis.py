"""The CPU work of enrolling a gallery photo (decode, detect, describe, check, crop), apart from the writes,
so that a batch can spread it over every core: worker processes analyse, the calling process stores.

Nothing here touches the database, so the worker processes need no connection.
"""

from __future__ import annotations

import hashlib
import io
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context

import django
import numpy as np
from django.conf import settings
from PIL import Image

from search.faces import DetectedFace, EngineNotAvailable, get_engine
from search.imaging import PhotoRejected, decode_photo, encode_jpeg
from search.photo_faces import FoundFace, PhotoFaces, timed


class EnrolmentSkipped(ValueError):
    """A gallery photo that was not enrolled, with the reason and a short code to count reasons by."""

    def __init__(self, message: str, code: str = "refused"):
        super().__init__(message, code)
        self.code = code

    def __str__(self) -> str:
        return self.args[0]


@dataclass(frozen=True)
class OtherEngineFace:
    """The same face as another engine describes it, for that engine's tombstones (store.tombstone_match)."""

    embedding: np.ndarray
    quality: dict


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
    # The engines asked for (other_engines of enrolment_analyse): the face each finds where this one is, or None
    # when it finds none there; an engine not installed here is listed in other_unavailable instead.
    other_faces: dict[str, OtherEngineFace | None] = field(default_factory=dict)
    other_unavailable: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)  # milliseconds per stage


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _largest_clear_face(faces: list, width):
    """The largest face if it is large enough and no other face is nearly as large; else EnrolmentSkipped."""
    if not faces:
        raise EnrolmentSkipped("No face found in the photo.", "no_face")
    ranked = sorted(faces, key=width, reverse=True)
    largest = ranked[0]
    if width(largest) < settings.ENROL_MIN_FACE_PX:
        raise EnrolmentSkipped(
            f"The face is too small ({width(largest)} px wide; at least "
            f"{settings.ENROL_MIN_FACE_PX} px at the photo's own resolution).",
            "too_small",
        )
    if len(ranked) > 1 and width(ranked[1]) >= settings.ENROL_AMBIGUOUS_RATIO * width(largest):
        raise EnrolmentSkipped(
            f"Two faces of similar size ({width(largest)} and {width(ranked[1])} px): which person "
            "is meant is ambiguous. Crop the photo to one face.",
            "ambiguous",
        )
    return largest


def _sharp_enough(face: FoundFace) -> FoundFace:
    if face.quality["sharpness"] < settings.ENROL_MIN_SHARPNESS:
        raise EnrolmentSkipped(
            f"The face is too blurred (sharpness {face.quality['sharpness']:.0f}, at least "
            f"{settings.ENROL_MIN_SHARPNESS:.0f}).",
            "blurred",
        )
    return face


def enrolment_quality_gate(faces: list) -> FoundFace:
    """The face to enrol, or EnrolmentSkipped: no face, too small, ambiguous, or too blurred.

    The limits are settings chosen from the shared labelled photos (docs/quality-gate.md).
    """
    return _sharp_enough(_largest_clear_face(faces, lambda face: face.width))


def enrolment_detections(faces_in_photo: PhotoFaces) -> list[DetectedFace]:
    """The faces the quality gate needs, left to right and not yet described, found the quick way when that
    cannot change its answer.

    Gallery photos mostly show one large face. An engine's quick detection (dlib: HOG without upsampling,
    about 4× faster) misses only faces narrower than its `quick_min_face_px`; when the largest face found
    is wide enough that any face the ambiguity rule cares about (≥ ENROL_AMBIGUOUS_RATIO of it) would
    also have been found, the quick result stands. Otherwise the photo is looked at again in full.
    """
    engine = faces_in_photo.engine
    quick_min = getattr(engine, "quick_min_face_px", None)
    if quick_min:
        faces = faces_in_photo.detect(quick=True)
        if faces and max(face.width for face in faces) * settings.ENROL_AMBIGUOUS_RATIO >= quick_min:
            return faces
    return faces_in_photo.detect()


def enrolment_faces(faces_in_photo: PhotoFaces) -> list[FoundFace]:
    """enrolment_detections, every face described."""
    return [faces_in_photo.describe(face) for face in enrolment_detections(faces_in_photo)]


def enrolment_analyse(data: bytes, engine_name: str, *, other_engines: tuple[str, ...] = ()) -> AnalysedPhoto:
    """Decode, detect, describe and check one gallery photo; raise EnrolmentSkipped with the reason.

    Only the face the gate weighs last (the largest) is described: the others count by their width alone.
    other_engines: engines to describe the enrolled face with as well (the face each finds at the same place in
    the stored re-encode), for the tombstones they hold.
    """
    timings: dict[str, float] = {}
    try:
        with timed(timings, "decode"):
            try:
                photo = decode_photo(data)
            except PhotoRejected as exc:
                raise EnrolmentSkipped(str(exc), "unreadable") from None
            faces_in_photo = PhotoFaces(photo.image, get_engine(engine_name), timings, quality_timed=True)
        detected = enrolment_detections(faces_in_photo)
        largest = _sharp_enough(
            faces_in_photo.describe(_largest_clear_face(detected, lambda d: faces_in_photo.box_of(d)[2]))
        )
    except EnrolmentSkipped as exc:
        exc.timings = timings  # a refused photo's time counts too (it crosses the process boundary with it)
        raise
    with timed(timings, "encode"):
        image_jpeg = encode_jpeg(photo.image)
    crop_jpeg = faces_in_photo.crop_jpeg(largest)
    other_faces, unavailable = {}, []
    if other_engines:
        with timed(timings, "other_engines"):
            image = None
            for name in other_engines:
                try:
                    engine = get_engine(name)
                except EngineNotAvailable:
                    unavailable.append(name)
                    continue
                if image is None:
                    # As the tombstone check has always described it: the stored re-encode, decoded.
                    image = stored_image(image_jpeg)
                face = PhotoFaces(image, engine).find_at(largest.box)
                other_faces[name] = None if face is None else OtherEngineFace(face.embedding, face.quality)
    return AnalysedPhoto(
        content_hash=photo.content_hash,
        image_jpeg=image_jpeg,
        crop_jpeg=crop_jpeg,
        box=largest.box,
        landmarks=largest.landmarks,
        embedding=largest.embedding,
        quality=largest.quality,
        faces_found=len(detected),
        other_faces=other_faces,
        other_unavailable=tuple(unavailable),
        timings=timings,
    )


def stored_image(data: bytes) -> Image.Image:
    """A photo the portal stored itself (its clean re-encode), decoded: it passed the intake checks once already,
    and their size limit applies to what was sent, not to the re-encode."""
    with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
        return image.convert("RGB")


def analyse_file(path: str, engine_name: str, other_engines: tuple[str, ...] = ()) -> AnalysedPhoto | EnrolmentSkipped:
    """enrolment_analyse on a file, the refusal returned rather than raised (it crosses a process boundary)."""
    try:
        with open(path, "rb") as photo_file:
            data = photo_file.read(settings.UPLOAD_MAX_BYTES + 1)
    except OSError as exc:
        return EnrolmentSkipped(f"The file could not be read: {exc.strerror}.", "unreadable")
    try:
        return enrolment_analyse(data, engine_name, other_engines=other_engines)
    except EnrolmentSkipped as exc:
        return exc


_single_threaded = False


def _analyse_in_worker(path: str, engine_name: str, other_engines: tuple[str, ...]):
    """analyse_file in a batch's worker process: OpenCV on one thread there, as the batch already runs one process
    per core (its own thread pool would only contend with the other processes)."""
    global _single_threaded
    if not _single_threaded:
        try:
            import cv2

            cv2.setNumThreads(1)
        except ImportError:
            pass
        _single_threaded = True
    return analyse_file(path, engine_name, other_engines)


def analyse_files(paths: list[str], engine_name: str, workers: int, other_engines: tuple[str, ...] = ()):
    """analyse_file over many files, in order, on `workers` processes (in this process when 1)."""
    if workers <= 1 or len(paths) < 2:
        for path in paths:
            yield analyse_file(path, engine_name, other_engines)
        return
    # spawn, not fork: OpenCV's and dlib's thread pools do not survive a fork. Each worker sets Django up
    # before it unpickles its first call: importing search.enrolment loads the models.
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=django.setup) as pool:
        yield from pool.map(
            _analyse_in_worker, paths, [engine_name] * len(paths), [other_engines] * len(paths), chunksize=1
        )
