"""Lawful galleries at enrolment: provenance, the quality gate, minors only in missing-person galleries."""

import io
from datetime import date

import numpy as np
from django.test import TestCase
from PIL import Image, ImageFilter

from search import pipeline
from search.enrolment import (
    EnrolmentItem,
    EnrolmentSkipped,
    enrolment_quality_gate,
    face_image_enrol,
    gallery_enrol_batch,
    gallery_get_or_create,
    profile_get_or_create,
)
from search.models import FaceImage, Gallery
from search.photo_faces import FoundFace
from search.services import probe_submit
from tests.base import GALLERY_PROVENANCE, AgencyFixtureMixin, faces_dir, photo_bytes


def fake_face(width: int, sharpness: float = 200.0) -> FoundFace:
    return FoundFace(
        box=[0, 0, width, width],
        landmarks=[],
        embedding=np.zeros(128, dtype=np.float32),
        quality={"sharpness": sharpness, "face_width_px": width},
        detected=None,
    )


class ProvenanceTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()

    def test_a_new_gallery_without_its_provenance_is_refused(self):
        with self.assertRaisesMessage(
            EnrolmentSkipped, "needs a source type, a responsible person, a retention period"
        ):
            gallery_get_or_create(owner=self.north, name="New", legal_basis="Police Act s.64")
        self.assertFalse(Gallery.objects.exists())

    def test_an_existing_gallery_keeps_its_own_provenance(self):
        created, _ = gallery_get_or_create(owner=self.north, name="G", legal_basis="Act", **GALLERY_PROVENANCE)
        again, was_created = gallery_get_or_create(owner=self.north, name="G")
        self.assertEqual((again, was_created, again.retention_days), (created, False, 3650))


class QualityGateTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        cls.gallery, _ = gallery_get_or_create(owner=cls.north, name="G", legal_basis="Act", **GALLERY_PROVENANCE)
        cls.profile = profile_get_or_create(gallery=cls.gallery, display_name="Person")

    def enrol(self, data: bytes):
        return face_image_enrol(profile=self.profile, data=data, source_name="x.jpg")

    def test_two_faces_of_similar_size_are_ambiguous(self):
        with self.assertRaises(EnrolmentSkipped) as refused:
            self.enrol(photo_bytes("couple.jpg"))
        self.assertEqual(refused.exception.code, "ambiguous")
        self.assertIn("Two faces of similar size", str(refused.exception))

    def test_one_main_face_with_a_small_background_face_enrols_the_main_face(self):
        # One person 800 px tall beside another 300 px tall: faces of about 216 and 104 px, both wide enough
        # for the quick detector (80 px), far enough apart in size not to be ambiguous.
        main = Image.open(io.BytesIO(photo_bytes("img1.jpg"))).convert("RGB")
        small = Image.open(io.BytesIO(photo_bytes("img17.jpg"))).convert("RGB")
        main = main.resize((main.width * 800 // main.height, 800))
        small = small.resize((small.width * 300 // small.height, 300))
        canvas = Image.new("RGB", (main.width + small.width, 800), "white")
        canvas.paste(main, (0, 0))
        canvas.paste(small, (main.width, 500))
        buffer = io.BytesIO()
        canvas.save(buffer, format="JPEG")
        result = self.enrol(buffer.getvalue())
        self.assertEqual(result.faces_found, 2)
        self.assertGreater(result.face_image.box[2], 200)
        self.assertLess(result.face_image.box[0], main.width)  # the main person's face, on the left

    def test_img67s_small_second_face_is_not_looked_for(self):
        # Its second "face" (a blue light HOG takes for one, 37 px) is narrower than the quick detector's
        # 80 px, and the 181 px main face is wide enough that nothing the ambiguity rule weighs is missed.
        result = self.enrol(photo_bytes("img67.jpg"))
        self.assertEqual(result.faces_found, 1)
        self.assertGreater(result.face_image.box[2], 200)

    def test_an_extremely_blurred_face_is_refused(self):
        image = Image.open(io.BytesIO(photo_bytes("img17.jpg"))).filter(ImageFilter.GaussianBlur(8))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG")
        with self.assertRaises(EnrolmentSkipped) as refused:
            self.enrol(buffer.getvalue())
        self.assertEqual(refused.exception.code, "blurred")

    def test_a_photo_without_a_face_is_refused(self):
        from tests.base import image_bytes

        with self.assertRaises(EnrolmentSkipped) as refused:
            self.enrol(image_bytes("PNG", size=(300, 300)))
        self.assertEqual(refused.exception.code, "no_face")

    def test_the_gate_limits(self):
        with self.assertRaises(EnrolmentSkipped) as refused:
            enrolment_quality_gate([fake_face(39)])
        self.assertEqual(refused.exception.code, "too_small")
        self.assertEqual(enrolment_quality_gate([fake_face(40)]).width, 40)
        with self.assertRaises(EnrolmentSkipped):
            enrolment_quality_gate([fake_face(100), fake_face(70)])
        self.assertEqual(enrolment_quality_gate([fake_face(100), fake_face(69)]).width, 100)
        with self.assertRaises(EnrolmentSkipped):
            enrolment_quality_gate([fake_face(100, sharpness=24)])

    def test_the_summary_counts_skips_per_reason(self):
        items = [
            EnrolmentItem(path=str(faces_dir() / name), display_name="Person")
            for name in ("couple.jpg", "img1.jpg", "img1.jpg")
        ]
        summary = gallery_enrol_batch(gallery=self.gallery, gallery_created=False, items=items).as_dict()
        self.assertEqual(summary["skip_reasons"], {"ambiguous": 1, "duplicate": 1})


class MinorTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        cls.bookings, _ = gallery_get_or_create(
            owner=cls.north, name="Bookings", legal_basis="Act", **GALLERY_PROVENANCE
        )
        cls.missing, _ = gallery_get_or_create(
            owner=cls.north,
            name="Missing",
            legal_basis="Consent",
            source_type="missing",
            responsible_person="Unit",
            retention_days=365,
        )
        today = date.today()
        cls.child_birthday = date(today.year - 15, 1, 1)

    def test_a_minor_is_refused_outside_missing_person_galleries(self):
        child = profile_get_or_create(gallery=self.bookings, display_name="Child", date_of_birth=self.child_birthday)
        with self.assertRaises(EnrolmentSkipped) as refused:
            face_image_enrol(profile=child, data=photo_bytes("img1.jpg"), source_name="x")
        self.assertEqual(refused.exception.code, "minor")
        self.assertIn("minor", str(refused.exception))
        self.assertFalse(FaceImage.objects.exists())

    def test_a_person_who_turned_eighteen_today_is_not_a_minor(self):
        today = date.today()
        try:
            birthday = today.replace(year=today.year - 18)
        except ValueError:  # 29 February
            birthday = today.replace(year=today.year - 18, day=28)
        adult = profile_get_or_create(gallery=self.bookings, display_name="Adult", date_of_birth=birthday)
        result = face_image_enrol(profile=adult, data=photo_bytes("img1.jpg"), source_name="x")
        self.assertFalse(result.face_image.minor_at_enrolment)

    def test_a_minor_in_a_missing_person_gallery_is_returned_only_to_missing_person_searches(self):
        child = profile_get_or_create(gallery=self.missing, display_name="Child", date_of_birth=self.child_birthday)
        face_image_enrol(profile=child, data=photo_bytes("img1.jpg"), source_name="x")
        results = {}
        for purpose in ("Robbery", "Missing person"):
            with self.captureOnCommitCallbacks(execute=False):
                job = probe_submit(
                    case=self.case,
                    uploaded_by=self.alice,
                    data=photo_bytes("img2.jpg"),
                    purpose=purpose,
                    justification="Looking for the person in this photo",
                )
            pipeline.search_job_run(job_id=job.id)
            results[purpose] = list(job.candidates.values_list("profile__display_name", flat=True))
        self.assertEqual(results, {"Robbery": [], "Missing person": ["Child"]})
