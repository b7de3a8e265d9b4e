"""The engine registry refuses what it cannot trust: unknown engines, missing or altered model files."""

from unittest import mock

from django.db import connection
from django.test import SimpleTestCase, TestCase

from search.faces import DEFAULT_ENGINE, ENGINES, EngineNotAvailable, _sface, get_engine
from search.index import OPCLASSES, descriptor_leaves
from search.models import (
    DESCRIPTOR_DIMENSIONS,
    DESCRIPTOR_HASH_MODULUS,
    HNSW_EF_CONSTRUCTION,
    HNSW_M,
    FaceDescriptor,
    Gallery,
)


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

    def test_the_descriptors_have_the_registry_dimension(self):
        self.assertEqual(FaceDescriptor._meta.get_field("embedding").dimensions, DESCRIPTOR_DIMENSIONS)
        for entry in ENGINES.values():
            self.assertEqual(entry.dimensions, DESCRIPTOR_DIMENSIONS)
        self.assertEqual(Gallery._meta.get_field("engine").default, DEFAULT_ENGINE)


class EnginePartitionTests(TestCase):
    """The database holds, for each engine of the registry, the partition and HNSW index the registry names."""

    def catalog(self, sql: str, params: list) -> list[tuple]:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def test_each_engine_has_its_partition_hashed_on_the_gallery(self):
        rows = self.catalog(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), pg_get_partkeydef(c.oid) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'search_facedescriptor'::regclass",
            [],
        )
        self.assertEqual(
            sorted(rows),
            sorted(
                (entry.partition, f"FOR VALUES IN ('{name}')", "HASH (gallery_id)") for name, entry in ENGINES.items()
            ),
        )
        for name in ENGINES:
            leaves = self.catalog(
                "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
                " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass ORDER BY c.relname",
                [ENGINES[name].partition],
            )
            self.assertEqual(
                leaves,
                [
                    (leaf, f"FOR VALUES WITH (modulus {DESCRIPTOR_HASH_MODULUS}, remainder {remainder})")
                    for remainder, (leaf, _) in enumerate(descriptor_leaves(name))
                ],
            )

    def test_each_partition_has_the_engines_hnsw_index_on_every_leaf(self):
        for name, entry in ENGINES.items():
            ((table, method, opclass, options),) = self.catalog(
                "SELECT t.relname, am.amname, op.opcname, c.reloptions FROM pg_index x"
                " JOIN pg_class c ON c.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid"
                " JOIN pg_am am ON am.oid = c.relam JOIN pg_opclass op ON op.oid = x.indclass[0]"
                " WHERE c.relname = %s",
                [entry.hnsw_index],
            )
            self.assertEqual((table, method, opclass), (entry.partition, "hnsw", OPCLASSES[entry.metric]), name)
            self.assertEqual(sorted(options), sorted([f"m={HNSW_M}", f"ef_construction={HNSW_EF_CONSTRUCTION}"]))
            attached = self.catalog(
                "SELECT c.relname, t.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " JOIN pg_index x ON x.indexrelid = c.oid JOIN pg_class t ON t.oid = x.indrelid"
                " WHERE i.inhparent = %s::regclass ORDER BY t.relname",
                [entry.hnsw_index],
            )
            self.assertEqual(attached, [(index, leaf) for leaf, index in descriptor_leaves(name)], name)
