"""The face engine interface: detect faces in a photo, describe each with a vector.

The registry (ENGINES) holds one entry per engine: its metric, the mate-based distance bound under
which two faces count as a match, the descriptor's dimension, its partition of the descriptor table and
the name of that partition's HNSW index; adding an engine is one entry (and, for the database, a migration
that adds its partition and index: docs/partitions.md).
Every stored descriptor records the engine that made it, and a search compares only descriptors of the
same engine. Engines load their models once per process (get_engine caches them).
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings


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

    def eyes_and_nose(self, face: DetectedFace) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]]:
        """The centres of the two eyes and the nose tip, from the engine's own landmarks."""
        raise NotImplementedError


DLIB_RESNET = "dlib-resnet-v1"
YUNET_SFACE = "yunet-sface-int8"


@dataclass(frozen=True)
class EngineEntry:
    """What the rest of the portal knows of an engine without loading it."""

    name: str
    implementation: str  # "module.Class"
    metric: str  # "euclidean" or "cosine"; the engine's HNSW index uses the same
    dimensions: int
    # Its partition of search_facedescriptor (hashed on the gallery into leaves <partition>_0 …) and the HNSW
    # index of that partition (one per leaf: <hnsw_index>_0 …); migration 0018 creates both (docs/partitions.md).
    partition: str
    hnsw_index: str
    # The setting holding the mate-based distance bound: no decision ever counts two faces further apart
    # than this as a likely match (the calibrated threshold, search.open_set, is at or under it).
    threshold_setting: str
    # The setting holding the least sharpness of a face the engine still compares reliably
    # (docs/quality-gate.md: the curve it was read from).
    min_sharpness_setting: str

    @property
    def threshold(self) -> float:
        return getattr(settings, self.threshold_setting)

    @property
    def min_sharpness(self) -> float:
        return getattr(settings, self.min_sharpness_setting)


ENGINES = {
    entry.name: entry
    for entry in (
        EngineEntry(
            DLIB_RESNET,
            "search.faces._dlib.DlibEngine",
            metric="euclidean",
            dimensions=128,
            partition="search_facedescriptor_dlib",
            hnsw_index="face_descriptor_dlib_hnsw",
            threshold_setting="FACE_MATCH_THRESHOLD",
            min_sharpness_setting="DLIB_QUALITY_MIN_SHARPNESS",
        ),
        EngineEntry(
            YUNET_SFACE,
            "search.faces._sface.SFaceEngine",
            metric="cosine",
            dimensions=128,
            partition="search_facedescriptor_sface",
            hnsw_index="face_descriptor_sface_hnsw",
            threshold_setting="SFACE_MATCH_THRESHOLD",
            min_sharpness_setting="SFACE_QUALITY_MIN_SHARPNESS",
        ),
    )
}
DEFAULT_ENGINE = YUNET_SFACE


def engine_entry(name: str) -> EngineEntry:
    """The registry entry of that engine, or EngineNotAvailable."""
    if name not in ENGINES:
        raise EngineNotAvailable(f"Unknown face engine {name!r}; known: {', '.join(ENGINES)}")
    return ENGINES[name]


def engine_thresholds() -> dict[str, float]:
    """Each engine's match threshold (a distance), without loading any model."""
    return {name: entry.threshold for name, entry in ENGINES.items()}


def engine_threshold(name: str) -> float:
    return engine_entry(name).threshold


def engine_is_match(*, engine: str, distance: float, threshold: float | None = None) -> bool:
    """Whether a distance between two faces of that engine is a match (under its bound, or the one given)."""
    return distance <= (engine_threshold(engine) if threshold is None else threshold)


def engine_distance(name: str, a: np.ndarray, b: np.ndarray) -> float:
    """The distance of that engine's metric between two descriptors (as pgvector computes it)."""
    if engine_entry(name).metric == "cosine":
        return 1.0 - float(np.dot(a, b) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12))
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)))


def _engine_module(name: str):
    try:
        return importlib.import_module(engine_entry(name).implementation.rsplit(".", 1)[0])
    except ImportError as exc:
        raise EngineNotAvailable(f"Face engine {name!r} is not installed: {exc}") from exc


@functools.cache
def get_engine(name: str = DEFAULT_ENGINE) -> FaceEngine:
    """The engine of that name, its models loaded once per process."""
    return getattr(_engine_module(name), ENGINES[name].implementation.rsplit(".", 1)[1])()


def engine_model_files(name: str) -> list[ModelFile]:
    """The model files the engine loads, found without loading any model (readiness checks use it)."""
    return _engine_module(name).model_files()


def face_quality(engine: FaceEngine, face: DetectedFace, *, sharpness: float, scale: float = 1.0) -> dict:
    """What a face's descriptor can be trusted for: the distance between the eyes (in the photo's own
    pixels), the sharpness of the aligned face, the pose from the landmarks and the detector's score.

    usable is False below the floors read from the shared photos (docs/quality-gate.md): such a face's
    candidates may be listed for an examiner, never as a likely candidate.
    """
    first, second, (nx, ny) = engine.eyes_and_nose(face)
    (ax, ay), (bx, by) = sorted([first, second])  # left to right in the photo
    eye_distance = float(np.hypot(bx - ax, by - ay))
    # Yaw: how far the nose sits from the midpoint between the eyes, in half eye-distances (0 frontal,
    # about ±1 in profile); roll: the tilt of the line between the eyes, in degrees.
    mid_x, mid_y = (ax + bx) / 2, (ay + by) / 2
    yaw = ((nx - mid_x) * (bx - ax) + (ny - mid_y) * (by - ay)) / max(eye_distance, 1e-6) ** 2 * 2
    roll = float(np.degrees(np.arctan2(by - ay, bx - ax)))
    eye_distance_px = round(eye_distance / scale, 1)
    # The floor applies to the pixels the descriptor is made from: a large photo is scaled down for
    # detection (FACE_DETECT_MAX_SIDE), and a face that is large in it may be small there.
    floors = {
        "small": eye_distance < settings.QUALITY_MIN_EYE_DISTANCE_PX,
        "blurred": sharpness < ENGINES[engine.name].min_sharpness,
    }
    return {
        "eye_distance_px": eye_distance_px,
        "described_eye_distance_px": round(eye_distance, 1),
        "sharpness": round(sharpness, 1),
        "yaw": round(float(yaw), 2),
        "roll_degrees": round(roll, 1),
        "detector_score": round(face.detector_score, 3),
        "face_width_px": round(face.box[2] / scale),
        "usable": not any(floors.values()),
        "below": [name for name, below in floors.items() if below],
    }


def quality_usable(quality: dict) -> bool:
    """Whether a stored face's quality passed the floors (faces stored before the measure existed: yes)."""
    return bool(quality.get("usable", True))


def sharpness(gray: np.ndarray) -> float:
    """Variance of the Laplacian: low on blurred faces."""
    g = gray.astype(np.float32)
    lap = -4 * g[1:-1, 1:-1] + g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:]
    return float(lap.var())
