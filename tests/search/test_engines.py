"""The engine registry refuses what it cannot trust: unknown engines, missing or altered model files."""

from unittest import mock

from django.test import SimpleTestCase

from search.faces import DEFAULT_ENGINE, ENGINES, EngineNotAvailable, _sface, get_engine
from search.index import OPCLASSES
from search.models import DESCRIPTOR_DIMENSIONS, FaceImage, Gallery


class EngineRegistryTests(SimpleTestCase):
    def test_an_unknown_engine_is_a_clear_error(self):
        with self.assertRaisesMessage(
            EngineNotAvailable, "Unknown face engine 'arcface'; known: dlib-resnet-v1, yunet-sface-int8"
        ):
            get_engine("arcface")

    def test_a_model_file_with_the_wrong_hash_is_refused_by_name(self):
        altered = dict(_sface.MODEL_FILES)
        altered[_sface.RECOGNIZER] = "0" * 64
        with mock.patch.object(_sface, "MODEL_FILES", altered):
            with self.assertRaisesMessage(
                EngineNotAvailable, "face_recognition_sface_2021dec_int8bq.onnx has the wrong SHA-256"
            ):
                _sface.SFaceEngine()

    def test_both_engines_load_and_describe_in_128_dimensions(self):
        for name, metric in (("dlib-resnet-v1", "euclidean"), ("yunet-sface-int8", "cosine")):
            engine = get_engine(name)
            self.assertEqual((engine.dimensions, engine.metric), (128, metric))

    def test_each_engine_has_its_partial_index_in_the_model(self):
        indexes = {index.name: index for index in FaceImage._meta.indexes}
        for name, entry in ENGINES.items():
            index = indexes[entry.hnsw_index]
            self.assertEqual(index.opclasses, [OPCLASSES[entry.metric]], name)
            self.assertEqual(dict(index.condition.children), {"engine": name})
            self.assertEqual(entry.dimensions, DESCRIPTOR_DIMENSIONS)
        self.assertEqual(Gallery._meta.get_field("engine").default, DEFAULT_ENGINE)
