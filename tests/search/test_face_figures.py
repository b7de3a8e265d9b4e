"""The face figures of the core, on the real labelled photos, through the product's engine and index."""

import csv

import pytest
from django.db import connection
from django.test import TestCase, override_settings
from django.test.utils import CaptureQueriesContext

from search import index
from search.enrolment import EnrolmentItem, gallery_enrol_batch, gallery_get_or_create
from search.faces import get_engine
from search.gallery_scope import gallery_ids_searchable_by
from search.imaging import decode_photo
from search.models import FaceImage
from search.photo_faces import PhotoFaces
from tests.base import GALLERY_PROVENANCE, AgencyFixtureMixin, faces_dir, identities, photo_bytes

HELD_OUT = "P13"  # enrolled only in South's gallery: a stranger to North


def faces_found(name: str, engine: str = "dlib-resnet-v1", sensitive: bool = False) -> list:
    photo = decode_photo(photo_bytes(name))
    return PhotoFaces(photo.image, get_engine(engine)).find(sensitive=sensitive)


@pytest.mark.faces
class FaceFigureTests(AgencyFixtureMixin, TestCase):
    """The figures hold for each engine; galleries made here are searched with ENGINE."""

    ENGINE = "dlib-resnet-v1"

    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        cls.threshold = get_engine(cls.ENGINE).default_threshold
        by_identity = identities()
        with override_settings(FACE_ENGINE=cls.ENGINE):
            north_gallery, _ = gallery_get_or_create(
                owner=cls.north, name="North bookings", legal_basis="Test", **GALLERY_PROVENANCE
            )
            south_gallery, _ = gallery_get_or_create(
                owner=cls.south, name="South bookings", legal_basis="Test", **GALLERY_PROVENANCE
            )
        for gallery, wanted in ((north_gallery, lambda i: i != HELD_OUT), (south_gallery, lambda i: i == HELD_OUT)):
            items = [
                EnrolmentItem(path=str(faces_dir() / name), display_name=identity)
                for name, identity in by_identity.items()
                if wanted(identity)
            ]
            summary = gallery_enrol_batch(gallery=gallery, gallery_created=True, items=items)
            assert summary.skipped == [], summary.skipped
        cls.face_by_file = {f.source_name.rsplit("/", 1)[-1]: f for f in FaceImage.objects.select_related("descriptor")}

    def test_every_labelled_photo_is_enrolled(self):
        self.assertEqual(len(self.face_by_file), len(identities()))
        self.assertEqual(len(self.face_by_file), 62)

    def test_pair_verification_at_the_default_threshold(self):
        threshold = self.threshold
        right, total, wrong = 0, 0, []
        with (faces_dir() / "master.csv").open() as rows:
            for row in csv.DictReader(rows):
                distance = index.distance_between(
                    self.face_by_file[row["file_x"]].id, self.face_by_file[row["file_y"]].id, engine=self.ENGINE
                )
                same = row["Decision"] == "Yes"
                total += 1
                if (distance <= threshold) == same:
                    right += 1
                else:
                    wrong.append((row["file_x"], row["file_y"], row["Decision"], round(distance, 4)))
        self.assertEqual(total, 300)
        self.assertGreaterEqual(right, 299, f"wrong pairs: {wrong}")

    def test_leave_one_out_rank_one_identification(self):
        gallery_ids = list({f.gallery_id for f in self.face_by_file.values()})
        right, misses = 0, []
        for name, face in self.face_by_file.items():
            hits = index.nearest_profiles(
                face.descriptor.embedding,
                engine=face.engine,
                gallery_ids=gallery_ids,
                limit=1,
                exclude_face_image_ids=(face.id,),
            )
            if hits and hits[0].profile_id == face.profile_id:
                right += 1
            else:
                misses.append(name)
        self.assertGreaterEqual(right, 61, f"missed: {misses}")

    def test_the_graph_and_the_exact_scan_give_the_same_candidates(self):
        # Galleries this small are read exactly (EXACT_SEARCH_MAX_FACES); large ones go through HNSW.
        gallery_ids = list({f.gallery_id for f in self.face_by_file.values()})
        for name in ("img1.jpg", "img17.jpg", "img30.jpg"):
            face = self.face_by_file[name]
            answers = {}
            for exact_up_to in (0, 1_000_000):
                with override_settings(EXACT_SEARCH_MAX_FACES=exact_up_to), CaptureQueriesContext(connection) as sql:
                    answers[exact_up_to] = [
                        (hit.profile_id, round(hit.distance, 5))
                        for hit in index.nearest_profiles(
                            face.descriptor.embedding,
                            engine=self.ENGINE,
                            gallery_ids=gallery_ids,
                            limit=5,
                            exclude_face_image_ids=(face.id,),
                        )
                    ]
                # The exact read is the query behind the OFFSET 0 fence; the graph's sets its ef_search.
                self.assertEqual(any("OFFSET 0" in query["sql"] for query in sql.captured_queries), exact_up_to > 0)
                self.assertEqual(
                    any("hnsw.ef_search" in query["sql"] for query in sql.captured_queries), exact_up_to == 0
                )
            self.assertEqual(len(answers[0]), 5)
            self.assertEqual(answers[0], answers[1_000_000], name)

    def test_a_person_not_enrolled_gets_no_candidate_under_the_threshold(self):
        north_galleries = gallery_ids_searchable_by(agency_id=self.north.id, engine=self.ENGINE)
        strangers = [name for name, identity in identities().items() if identity == HELD_OUT]
        self.assertTrue(strangers)
        for name in strangers:
            (face,) = faces_found(name, self.ENGINE)
            hits = index.nearest_profiles(face.embedding, engine=self.ENGINE, gallery_ids=north_galleries, limit=10)
            self.assertEqual(len(hits), 10)
            self.assertGreater(hits[0].distance, self.threshold, name)

    def test_the_same_person_is_found_only_in_galleries_the_agency_may_search(self):
        south_face = next(f for f in self.face_by_file.values() if f.profile.display_name == HELD_OUT)
        north_galleries = gallery_ids_searchable_by(agency_id=self.north.id, engine=self.ENGINE)
        hits = index.nearest_profiles(
            south_face.descriptor.embedding, engine=self.ENGINE, gallery_ids=north_galleries, limit=10
        )
        self.assertNotIn(south_face.profile_id, [hit.profile_id for hit in hits])


@pytest.mark.faces
class SFaceFigureTests(FaceFigureTests):
    ENGINE = "yunet-sface-int8"

    def test_every_descriptor_is_of_this_engine(self):
        self.assertEqual({f.engine for f in self.face_by_file.values()}, {self.ENGINE})


@pytest.mark.faces
class SFaceGroupPhotoTests(TestCase):
    def test_the_selfie_yields_six_faces_all_but_the_one_cut_by_the_corner(self):
        faces = faces_found("selfie-many-people.jpg", "yunet-sface-int8")
        self.assertEqual(len(faces), 6)

    def test_the_sensitive_detector_finds_every_face_a_person_counts_in_the_selfie(self):
        # Seven people, looked at one by one (docs/benchmarks.md): their face centres.
        people = sorted([(39, 300), (30, 478), (145, 366), (256, 182), (423, 199), (544, 433), (558, 145)])
        faces = faces_found("selfie-many-people.jpg", "yunet-sface-int8", sensitive=True)
        self.assertEqual(len(faces), 7)
        centres = sorted((f.box[0] + f.box[2] // 2, f.box[1] + f.box[3] // 2) for f in faces)
        for (x, y), (px, py) in zip(centres, people, strict=False):
            self.assertLess(abs(x - px) + abs(y - py), 40, centres)

    def test_couple_yields_both_faces_and_img67_only_the_person(self):
        self.assertEqual(len(faces_found("couple.jpg", "yunet-sface-int8")), 2)
        (face,) = faces_found("img67.jpg", "yunet-sface-int8")
        self.assertGreater(face.width, 150)


@pytest.mark.faces
class GroupPhotoTests(TestCase):
    def test_img67_yields_its_two_detections_and_the_labelled_face_is_the_largest(self):
        # The shared README counts two faces in img67.jpg. dlib's HOG returns two: the labelled person
        # (≈ 234 px) and a 46-px detection at (1116, 502) which, looked at, is a blue light in the
        # background rather than a person (see docs/benchmarks.md); no other detector tried finds a
        # second person. What matters for enrolment: the labelled face is by far the largest.
        faces = faces_found("img67.jpg")
        self.assertEqual(len(faces), 2)
        largest, other = sorted(faces, key=lambda f: f.width, reverse=True)
        self.assertGreater(largest.width, 200)
        self.assertLess(other.width, 0.25 * largest.width)
        self.assertGreater(other.box[0], 1000)  # the background detection, far right

    def test_couple_yields_both_faces(self):
        faces = faces_found("couple.jpg")
        self.assertEqual(len(faces), 2)

    def test_selfie_yields_the_four_unobstructed_frontal_faces(self):
        # A person counts seven faces; three are cut by the frame or half hidden, and dlib's HOG
        # detector does not find them (see docs/benchmarks.md). The four it must find, by centre:
        faces = faces_found("selfie-many-people.jpg")
        centres = sorted((f.box[0] + f.box[2] // 2, f.box[1] + f.box[3] // 2) for f in faces)
        expected = [(30, 305), (160, 375), (260, 205), (400, 210)]
        self.assertEqual(len(faces), 4, centres)
        for (x, y), (ex, ey) in zip(centres, expected, strict=False):
            self.assertLess(abs(x - ex) + abs(y - ey), 60, centres)
