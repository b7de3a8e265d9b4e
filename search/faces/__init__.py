"""The face engine interface: detect faces in a photo, describe each with a vector.

An engine has a name, a version, its own distance metric and its own default threshold. Every
stored descriptor records the engine that made it, and a search compares only descriptors of the
same engine. Engines load their models once per process (get_engine caches them).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np


class EngineNotAvailable(Exception):
    """The engine asked for is not installed or its model files are missing."""


@dataclass(frozen=True)
class ModelFile:
    """A file an engine loads, and the SHA-256 it must have (None where the engine checks none)."""

    path: str
    sha256: str | None = None


@dataclass(frozen=True)
class DetectedFace:
    """One face found in a photo, in the photo's own pixel coordinates."""

    box: tuple[int, int, int, int]  # x, y, width, height
    landmarks: list[tuple[float, float]]
    detector_score: float
    # Engine-private data needed to embed or align this face (dlib's shape, for instance).
    handle: object = field(default=None, compare=False, repr=False)

    @property
    def width(self) -> int:
        return self.box[2]

    def quality(self, sharpness: float) -> dict:
        return {
            "detector_score": round(self.detector_score, 3),
            "face_width_px": self.box[2],
            "sharpness": round(sharpness, 1),
        }


class FaceEngine:
    """What every engine provides. Images are RGB uint8 arrays (height, width, 3)."""

    name: str
    version: str
    metric: str  # "euclidean" or "cosine"
    default_threshold: float
    dimensions: int

    # An engine whose quick detection may miss faces narrower than this many pixels (None: no quick mode).
    quick_min_face_px: int | None = None

    def detect(self, image: np.ndarray, *, sensitive: bool = False, quick: bool = False) -> list[DetectedFace]:
        """Faces in the image; sensitive: also small or distant ones (slower); quick: only faces at least
        quick_min_face_px wide (faster)."""
        raise NotImplementedError

    def embed(self, image: np.ndarray, face: DetectedFace) -> np.ndarray:
        raise NotImplementedError

    def aligned_crop(self, image: np.ndarray, face: DetectedFace, size: int) -> np.ndarray:
        """A square crop of the face, rotated so the eyes are level, the same framing for all faces."""
        raise NotImplementedError


ENGINES = {
    "dlib-resnet-v1": "search.faces._dlib.DlibEngine",
    "yunet-sface-int8": "search.faces._sface.SFaceEngine",
}
DEFAULT_ENGINE = "dlib-resnet-v1"


def engine_thresholds() -> dict[str, float]:
    """Each engine's match threshold (a distance), without loading any model."""
    from django.conf import settings

    return {"dlib-resnet-v1": settings.FACE_MATCH_THRESHOLD, "yunet-sface-int8": settings.SFACE_MATCH_THRESHOLD}


def engine_threshold(name: str) -> float:
    thresholds = engine_thresholds()
    if name not in thresholds:
        raise EngineNotAvailable(f"Unknown face engine {name!r}; known: {', '.join(ENGINES)}")
    return thresholds[name]


def _engine_module(name: str):
    if name not in ENGINES:
        raise EngineNotAvailable(f"Unknown face engine {name!r}; known: {', '.join(ENGINES)}")
    import importlib

    try:
        return importlib.import_module(ENGINES[name].rsplit(".", 1)[0])
    except ImportError as exc:
        raise EngineNotAvailable(f"Face engine {name!r} is not installed: {exc}") from exc


@functools.cache
def get_engine(name: str = DEFAULT_ENGINE) -> FaceEngine:
    """The engine of that name, its models loaded once per process."""
    return getattr(_engine_module(name), ENGINES[name].rsplit(".", 1)[1])()


def engine_model_files(name: str) -> list[ModelFile]:
    """The model files the engine loads, found without loading any model (readiness checks use it)."""
    return _engine_module(name).model_files()


def sharpness(gray: np.ndarray) -> float:
    """Variance of the Laplacian: low on blurred faces."""
    g = gray.astype(np.float32)
    lap = -4 * g[1:-1, 1:-1] + g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:]
    return float(lap.var())
