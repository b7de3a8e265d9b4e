"""The descriptors' own table: partitioned by engine and by a hash of the gallery, an agency's search reads only the
leaves its galleries hash to (the query plan says so), with the engine's HNSW index on each when it may search many
faces; every deletion of a face removes its descriptor; migration 0018 moves existing descriptors so that they are
found as before."""

from __future__ import annotations

import json

import numpy as np
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test import TestCase, TransactionTestCase, override_settings
from django.test.utils import CaptureQueriesContext

from search import index
from search.faces import DLIB_RESNET, ENGINES, YUNET_SFACE
from search.models import FaceDescriptor, FaceImage, Gallery, Profile
from tests.factories import agency_make, gallery_make

BEFORE, MOVED = ("search", "0017_lawful_use"), ("search", "0018_descriptor_partitions")


def unit_vectors(count: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, 128)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def faces_make(gallery: Gallery, vectors: np.ndarray) -> list[FaceImage]:
    """One profile per vector, each with one face image and its descriptor (the gallery's engine)."""
    profiles = Profile.objects.bulk_create(
        [Profile(gallery=gallery, display_name=f"{gallery.name} {n}") for n in range(len(vectors))]
    )
    faces = FaceImage.objects.bulk_create(
        [
            FaceImage(
                profile=profile,
                gallery=gallery,
                image=f"gallery/{gallery.code}/{n}.jpg",
                box=[0, 0, 100, 100],
                engine=gallery.engine,
                content_hash=f"{gallery.id:08d}{n:056d}",
            )
            for n, profile in enumerate(profiles)
        ]
    )
    FaceDescriptor.objects.bulk_create(
        [FaceDescriptor.of(face, vector) for face, vector in zip(faces, vectors, strict=True)]
    )
    return faces


def leaf_of(gallery_id: int) -> str:
    """The leaf partition the gallery's descriptors are in, as PostgreSQL routed them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT tableoid::regclass::text FROM search_facedescriptor WHERE gallery_id = %s", [gallery_id]
        )
        (leaf,) = [row[0] for row in cursor.fetchall()]
    return leaf


def plan_nodes(plan: dict) -> list[dict]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += plan_nodes(child)
    return nodes


def search_plan(probe: np.ndarray, *, gallery_ids: list[int], engine: str = YUNET_SFACE) -> tuple[list, dict]:
    """The product's search (index.nearest_profiles), its hits and the plan of its vector query: the statements it
    ran are replayed with EXPLAIN (ANALYZE), settings included, and rolled back."""
    with transaction.atomic(), CaptureQueriesContext(connection) as captured:
        hits = index.nearest_profiles(probe, engine=engine, gallery_ids=gallery_ids, limit=5)
        transaction.set_rollback(True)  # the search's SET LOCAL settings end here
    statements = [query["sql"] for query in captured.captured_queries]
    (query,) = [sql for sql in statements if "ORDER BY" in sql and "search_facedescriptor" in sql]
    with transaction.atomic(), connection.cursor() as cursor:
        for sql in statements:
            if sql.startswith("SET LOCAL") or "set_config" in sql:
                cursor.execute(sql)
        cursor.execute(f"EXPLAIN (ANALYZE, COSTS OFF, FORMAT JSON) {query}")
        (plan,) = cursor.fetchone()
        transaction.set_rollback(True)
    plan = plan if isinstance(plan, list) else json.loads(plan)
    return hits, plan[0]["Plan"]


class PartitionPruningTests(TestCase):
    """North may search its two galleries of 6,000 faces each; South's ten small galleries fill other leaves of the
    same engine's partition, and a dlib gallery the other engine's partition.

    Whether a leaf is searched through its graph or read whole is the planner's choice, from the leaf's size and
    ef_search: with the product's ef_search (400 or more) a leaf of 6,000 faces is cheaper to read whole, so the test of
    the graph's use searches with ef_search 40, where a leaf of that size is not (docs/partitions.md)."""

    NORTH_FACES, SOUTH_FACES = 6_000, 20

    @classmethod
    def setUpTestData(cls):
        cls.north, cls.south = agency_make("north"), agency_make("south")
        cls.north_galleries = [gallery_make(owner=cls.north, name=f"North {n}") for n in range(2)]
        cls.south_galleries = [gallery_make(owner=cls.south, name=f"South {n}") for n in range(10)]
        with connection.cursor() as cursor:
            # A bulk load as docs/partitions.md describes it: the graphs dropped, the rows, the graphs built once.
            cursor.execute(f"DROP INDEX {ENGINES[YUNET_SFACE].hnsw_index}")
            cls.vectors = {}
            for seed, gallery in enumerate(cls.north_galleries + cls.south_galleries):
                count = cls.NORTH_FACES if gallery in cls.north_galleries else cls.SOUTH_FACES
                cls.vectors[gallery.id] = unit_vectors(count, seed)
                faces_make(gallery, cls.vectors[gallery.id])
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no index is built over pending foreign-key checks
            cursor.execute(index.hnsw_create_sql(YUNET_SFACE, **index.hnsw_parameters(YUNET_SFACE)))
        cls.dlib_gallery = gallery_make(owner=cls.north, name="North dlib")
        Gallery.objects.filter(pk=cls.dlib_gallery.pk).update(engine=DLIB_RESNET)
        cls.dlib_gallery.refresh_from_db()
        faces_make(cls.dlib_gallery, unit_vectors(cls.SOUTH_FACES, 99))
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE search_facedescriptor")
        cls.north_ids = [g.id for g in cls.north_galleries]
        cls.north_leaves = {leaf_of(gallery_id) for gallery_id in cls.north_ids}
        cls.other_leaves = {leaf_of(g.id) for g in cls.south_galleries} - cls.north_leaves
        cls.planted = FaceImage.objects.filter(gallery_id=cls.north_ids[0]).order_by("id")[7]
        cls.probe = cls.vectors[cls.north_ids[0]][7] + 0.02 * unit_vectors(1, 1000)[0]

    def exact_nearest(self, gallery_ids: list[int], count: int = 5) -> list[tuple[int, float]]:
        """The nearest faces by cosine distance over every descriptor of the galleries, computed here."""
        rows = FaceDescriptor.objects.filter(gallery_id__in=gallery_ids, engine=YUNET_SFACE).values_list(
            "face_image_id", "embedding"
        )
        probe = self.probe / np.linalg.norm(self.probe)
        distances = sorted((1 - float(np.dot(probe, vector / np.linalg.norm(vector))), face) for face, vector in rows)
        return [(face, distance) for distance, face in distances[:count]]

    def test_the_setup_puts_south_in_leaves_north_does_not_use(self):
        self.assertTrue(self.other_leaves)
        self.assertTrue(self.north_leaves <= {leaf for leaf, _ in index.descriptor_leaves(YUNET_SFACE)})

    @override_settings(EXACT_SEARCH_MAX_FACES=10_000, HNSW_EF_SEARCH=40)
    def test_many_allowed_faces_are_searched_through_the_hnsw_index_of_their_leaves_only(self):
        hits, plan = search_plan(self.probe, gallery_ids=self.north_ids)
        nodes = plan_nodes(plan)
        scanned = {node["Relation Name"] for node in nodes if "Relation Name" in node}
        self.assertEqual(scanned, self.north_leaves)
        hnsw = {index_name: leaf for leaf, index_name in index.descriptor_leaves(YUNET_SFACE)}
        used = {node["Index Name"] for node in nodes if node["Node Type"] == "Index Scan"}
        self.assertEqual({hnsw.get(name) for name in used}, self.north_leaves)
        self.assertEqual(plan["Plans"][0]["Node Type"], "Merge Append")  # the leaves' ordered scans, merged
        # The graph finds the face the probe was made from; the other four are random faces at almost the same
        # distance, which an approximate search may order differently.
        self.assertEqual(hits[0].face_image_id, self.planted.id)
        self.assertAlmostEqual(hits[0].distance, self.exact_nearest(self.north_ids)[0][1], places=4)
        self.assertEqual(len(hits), 5)

    def test_few_allowed_faces_are_read_exactly_from_their_leaves_only(self):
        # 12,000 faces: under EXACT_SEARCH_MAX_FACES (20,000), the leaves are read whole, no graph walked.
        hits, plan = search_plan(self.probe, gallery_ids=self.north_ids)
        nodes = plan_nodes(plan)
        self.assertEqual({node["Relation Name"] for node in nodes if "Relation Name" in node}, self.north_leaves)
        self.assertFalse([node for node in nodes if node["Node Type"] == "Index Scan"])
        exact = self.exact_nearest(self.north_ids)
        self.assertEqual([hit.face_image_id for hit in hits], [face for face, _ in exact])
        for hit, (_, distance) in zip(hits, exact, strict=True):
            self.assertAlmostEqual(hit.distance, distance, places=4)

    def test_another_agency_s_galleries_are_never_read(self):
        south_ids = [g.id for g in self.south_galleries]
        hits, plan = search_plan(self.probe, gallery_ids=south_ids)
        scanned = {node["Relation Name"] for node in plan_nodes(plan) if "Relation Name" in node}
        self.assertEqual(scanned, {leaf_of(gallery_id) for gallery_id in south_ids})
        self.assertFalse(
            {hit.face_image_id for hit in hits}
            & set(FaceImage.objects.filter(gallery_id__in=self.north_ids).values_list("id", flat=True))
        )

    def test_an_engine_reads_only_its_own_partition(self):
        _, plan = search_plan(self.probe, gallery_ids=[self.dlib_gallery.id], engine=DLIB_RESNET)
        scanned = {node["Relation Name"] for node in plan_nodes(plan) if "Relation Name" in node}
        self.assertEqual(scanned, {leaf_of(self.dlib_gallery.id)})
        self.assertTrue(scanned <= {leaf for leaf, _ in index.descriptor_leaves(DLIB_RESNET)})

    def test_counts_and_signatures_read_the_descriptors(self):
        self.assertEqual(index.gallery_faces_count(engine=YUNET_SFACE, gallery_ids=self.north_ids), 12_000)
        self.assertEqual(index.gallery_faces_count(engine=DLIB_RESNET, gallery_ids=self.north_ids), 0)
        before = index.gallery_signature(engine=YUNET_SFACE, gallery_ids=self.north_ids)
        FaceImage.objects.filter(gallery_id=self.north_ids[1]).order_by("id").first().delete()
        self.assertEqual(index.gallery_faces_count(engine=YUNET_SFACE, gallery_ids=self.north_ids), 11_999)
        self.assertNotEqual(index.gallery_signature(engine=YUNET_SFACE, gallery_ids=self.north_ids), before)

    def test_deleting_a_gallery_deletes_its_descriptors(self):
        gallery = self.south_galleries[3]
        self.assertEqual(FaceDescriptor.objects.filter(gallery_id=gallery.id).count(), self.SOUTH_FACES)
        gallery.delete()
        self.assertFalse(FaceDescriptor.objects.filter(gallery_id=gallery.id).exists())
        self.assertEqual(FaceDescriptor.objects.count(), FaceImage.objects.count())


class DescriptorMigrationTests(TransactionTestCase):
    """Faces enrolled before migration 0018 (their descriptor a column of search_faceimage) are found after it,
    the same faces at the same distances; the migration reverses; a face of an engine without a partition stops it
    with the reason and changes nothing."""

    def setUp(self):
        self.executor = MigrationExecutor(connection)
        self.addCleanup(self.migrate_to_latest)
        self.migrate(BEFORE)
        self.old = self.executor.loader.project_state(BEFORE).apps

    def migrate(self, target) -> None:
        self.executor.loader.build_graph()
        self.executor.migrate([target])

    def migrate_to_latest(self) -> None:
        self.executor.loader.build_graph()
        self.executor.migrate(self.executor.loader.graph.leaf_nodes())

    def old_faces_make(self, *, engine: str, count: int, seed: int, minors: int = 0) -> list[int]:
        """Galleries, profiles and faces as the portal held them before 0018: the descriptor in search_faceimage."""
        Agency = self.old.get_model("accounts", "Agency")
        agency, _ = Agency.objects.get_or_create(slug="north", defaults={"name": "North Police", "seats": 5})
        gallery = self.old.get_model("search", "Gallery").objects.create(
            owner=agency, name=f"Bookings {engine}", legal_basis="Police Act s.64", engine=engine
        )
        Profile = self.old.get_model("search", "Profile")
        OldFaceImage = self.old.get_model("search", "FaceImage")
        for n, vector in enumerate(unit_vectors(count, seed)):
            profile = Profile.objects.create(gallery=gallery, display_name=f"Person {n}")
            OldFaceImage.objects.create(
                profile=profile,
                gallery=gallery,
                image=f"gallery/{n}.jpg",
                box=[0, 0, 100, 100],
                embedding=vector,
                engine=engine,
                minor_at_enrolment=n < minors,
                content_hash=f"{seed:08d}{n:056d}",
            )
        return [gallery.id]

    def old_search(self, probe: np.ndarray, *, engine: str, gallery_ids: list[int]) -> list[tuple[int, float]]:
        """The search as the product ran it before 0018, on search_faceimage."""
        operator = "<=>" if ENGINES[engine].metric == "cosine" else "<->"
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, embedding {operator} %s::vector AS d FROM search_faceimage WHERE engine = %s"
                " AND gallery_id = ANY(%s) AND NOT minor_at_enrolment ORDER BY d LIMIT 5",
                ["[" + ",".join(str(float(v)) for v in probe) + "]", engine, gallery_ids],
            )
            return [(face, round(distance, 5)) for face, distance in cursor.fetchall()]

    def test_faces_enrolled_before_are_found_after_the_move_as_before(self):
        sface = self.old_faces_make(engine=YUNET_SFACE, count=120, seed=1, minors=3)
        dlib = self.old_faces_make(engine=DLIB_RESNET, count=60, seed=2)
        probes = {YUNET_SFACE: unit_vectors(3, 10), DLIB_RESNET: unit_vectors(3, 11)}
        galleries = {YUNET_SFACE: sface, DLIB_RESNET: dlib}
        before = {
            (engine, n): self.old_search(probe, engine=engine, gallery_ids=galleries[engine])
            for engine, vectors in probes.items()
            for n, probe in enumerate(vectors)
        }
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, gallery_id, profile_id, engine, minor_at_enrolment, embedding::text FROM search_faceimage"
            )
            old_rows = sorted(cursor.fetchall())

        self.migrate(MOVED)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT face_image_id, gallery_id, profile_id, engine, minor_at_enrolment, embedding::text"
                " FROM search_facedescriptor"
            )
            self.assertEqual(sorted(cursor.fetchall()), old_rows)
            cursor.execute(
                "SELECT count(*) FROM information_schema.columns"
                " WHERE table_name = 'search_faceimage' AND column_name = 'embedding'"
            )
            self.assertEqual(cursor.fetchone()[0], 0)
        for exact_up_to in (20_000, 0):  # read exactly, and through the leaves' HNSW indexes
            with override_settings(EXACT_SEARCH_MAX_FACES=exact_up_to):
                after = {
                    (engine, n): [
                        (hit.face_image_id, round(hit.distance, 5))
                        for hit in index.nearest_profiles(probe, engine=engine, gallery_ids=galleries[engine], limit=5)
                    ]
                    for engine, vectors in probes.items()
                    for n, probe in enumerate(vectors)
                }
            self.assertEqual(after, before, exact_up_to)

        # Back: the column again, with every descriptor, and the searches as before.
        self.migrate(BEFORE)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, gallery_id, profile_id, engine, minor_at_enrolment, embedding::text FROM search_faceimage"
            )
            self.assertEqual(sorted(cursor.fetchall()), old_rows)
            cursor.execute("SELECT to_regclass('search_facedescriptor')")
            self.assertIsNone(cursor.fetchone()[0])
        for (engine, n), found in before.items():
            self.assertEqual(self.old_search(probes[engine][n], engine=engine, gallery_ids=galleries[engine]), found)

    def test_a_face_of_an_engine_without_a_partition_stops_the_move_and_changes_nothing(self):
        self.old_faces_make(engine=YUNET_SFACE, count=5, seed=1)
        self.old_faces_make(engine="arcface-r100", count=2, seed=2)
        with self.assertRaisesMessage(Exception, "Face images of engine(s) arcface-r100 have no descriptor partition"):
            self.migrate(MOVED)
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass('search_facedescriptor'), count(embedding) FROM search_faceimage")
            self.assertEqual(cursor.fetchone(), (None, 7))
        self.old.get_model("search", "FaceImage").objects.filter(engine="arcface-r100").delete()
