"""Faces in a photo: detect, describe and crop, with the time each step took."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from PIL import Image

from search.faces import DetectedFace, FaceEngine, face_quality, sharpness
from search.imaging import encode_jpeg, scaled_for_detection


@dataclass
class FoundFace:
    """A face with its descriptor; box and landmarks in the photo's own coordinates."""

    box: list[int]
    landmarks: list[list[float]]
    embedding: np.ndarray
    quality: dict
    detected: DetectedFace  # in the coordinates of the detection image

    @property
    def width(self) -> int:
        return self.box[2]


def box_overlap(a, b) -> float:
    """Intersection over union of two [x, y, width, height] boxes: the same face found by two detectors."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    width = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    height = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = width * height
    return inter / float(aw * ah + bw * bh - inter) if inter else 0.0


# Two detectors found the same face when their boxes overlap at least this much (intersection over union).
SAME_FACE_OVERLAP = 0.3


def same_face(box, faces: list[FoundFace]) -> FoundFace | None:
    """The face among `faces` (another engine's) found where `box` is: the one overlapping it most, if enough."""
    return _most_overlapping(box, faces, lambda face: face.box)


def _most_overlapping(box, faces: list, box_of):
    """The first of the faces overlapping `box` most, if at least SAME_FACE_OVERLAP; else None."""
    overlap, match = max(
        ((box_overlap(box, box_of(f)), f) for f in faces), key=lambda pair: pair[0], default=(0.0, None)
    )
    return match if match is not None and overlap >= SAME_FACE_OVERLAP else None


@contextmanager
def timed(timings: dict, stage: str):
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = round(timings.get(stage, 0) + (time.perf_counter() - started) * 1000, 1)


class PhotoFaces:
    """Detects and describes the faces of one photo; keeps the working image for crops."""

    def __init__(
        self, image: Image.Image, engine: FaceEngine, timings: dict | None = None, *, quality_timed: bool = False
    ):
        self.engine = engine
        self.timings = timings if timings is not None else {}
        # quality_timed: the quality measure's share of "embed" is also recorded on its own, as "quality"
        self.quality_timed = quality_timed
        self.array, self.scale = scaled_for_detection(image)

    def find(self, *, sensitive: bool = False, quick: bool = False) -> list[FoundFace]:
        """Every face, left to right, with its descriptor (quick: see FaceEngine.detect)."""
        detected = self.detect(sensitive=sensitive, quick=quick)
        with timed(self.timings, "embed"):
            return [self._described(face) for face in detected]

    def detect(self, *, sensitive: bool = False, quick: bool = False) -> list[DetectedFace]:
        """Every face, left to right, not yet described: for a caller that describes only some of them."""
        with timed(self.timings, "detect"):
            detected = self.engine.detect(self.array, sensitive=sensitive, quick=quick)
        detected.sort(key=lambda face: (face.box[0], face.box[1]))
        return detected

    def describe(self, face: DetectedFace) -> FoundFace:
        """One detected face with its descriptor and quality, as find gives it."""
        with timed(self.timings, "embed"):
            return self._described(face)

    def box_of(self, face: DetectedFace) -> list[int]:
        """A detected face's box in the photo's own coordinates (FoundFace.box)."""
        return [round(v / self.scale) for v in face.box]

    def _described(self, face: DetectedFace) -> FoundFace:
        embedding = self.engine.embed(self.array, face)
        with timed(self.timings if self.quality_timed else {}, "quality"):
            chip = self.engine.aligned_crop(self.array, face, 150)
            gray = np.asarray(Image.fromarray(chip).convert("L"))
            # The face's interior only: an aligned crop reaching past the photo's edge has a black
            # border, whose edges would read as sharpness.
            inner = gray[30:120, 30:120]
            quality = face_quality(self.engine, face, sharpness=sharpness(inner), scale=self.scale)
        return FoundFace(
            box=self.box_of(face),
            landmarks=[[round(x / self.scale, 1), round(y / self.scale, 1)] for x, y in face.landmarks],
            embedding=embedding,
            quality=quality,
            detected=face,
        )

    def find_at(self, box) -> FoundFace | None:
        """The face this engine finds where `box` is (same_face over find()), only that one described."""
        detected = self.detect()
        match = _most_overlapping(box, detected, self.box_of)
        return None if match is None else self.describe(match)

    def crop_jpeg(self, face: FoundFace) -> bytes:
        """The face aligned by the eyes, square, the same framing for probe and gallery faces."""
        size = settings.FACE_CROP_SIZE
        with timed(self.timings, "render"):
            chip = self.engine.aligned_crop(self.array, face.detected, size)
            return encode_jpeg(Image.fromarray(chip), quality=90)
