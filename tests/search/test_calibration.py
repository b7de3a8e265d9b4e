"""The calibrated likely-candidate threshold and the per-face decision, on real photos and the real database."""

import io
import itertools

from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import TestCase, override_settings
from django.urls import reverse
from PIL import Image, ImageFilter

from portal.models import AuditEntry
from search import calibration
from search.faces import YUNET_SFACE
from search.models import Candidate, FaceImage, ProbeFace, ThresholdCalibration
from search.selectors import search_job_result
from tests.base import AgencyFixtureMixin, faces_dir, photo_bytes, sign_in
from tests.factories import gallery_make, job_make

# Four people, several photos each; img5.jpg (P01) is kept out to search with.
PEOPLE = {
    "P01": ["img1.jpg", "img2.jpg", "img4.jpg", "img6.jpg"],
    "P02": ["img26.jpg", "img27.jpg", "img28.jpg"],
    "P03": ["img47.jpg", "img48.jpg", "img49.jpg"],
    "P04": ["img53.jpg", "img54.jpg", "img55.jpg"],
}


def _paths(names):
    return [faces_dir() / name for name in names]


def _blurred(name: str, radius_at_1024: float) -> bytes:
    image = Image.open(faces_dir() / name).convert("RGB")
    image = image.filter(ImageFilter.GaussianBlur(radius_at_1024 * max(image.size) / 1024))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95)
    return out.getvalue()


class CalibratedSearchTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        cls.gallery = gallery_make(owner=cls.north, people={who: _paths(names) for who, names in PEOPLE.items()})
        assert cls.gallery.engine == YUNET_SFACE
        assert FaceImage.objects.filter(gallery=cls.gallery).count() == 13

    def search(self, data: bytes):
        return job_make(case=self.case, uploaded_by=self.alice, data=data)

    def test_a_search_records_the_threshold_it_used_and_the_data_behind_it(self):
        job = self.search(photo_bytes("img5.jpg"))
        recorded = job.thresholds[YUNET_SFACE]
        latest = ThresholdCalibration.objects.get(agency=self.north, engine=YUNET_SFACE)
        self.assertEqual((recorded["calibration_id"], recorded["version"]), (latest.id, 1))
        self.assertEqual(recorded["gallery_faces"], 13)
        self.assertEqual(recorded["labelled_pairs"], 2265)
        # 13 faces of 4 people: 78 pairs, of which 4·3/2 + 3 · 3 = 15 are mates; the rest are impostors.
        self.assertEqual(recorded["gallery_pairs"], 78 - 15)
        self.assertLessEqual(recorded["expected_false"], 0.01 * 1.0001)
        self.assertLess(recorded["distance"], 0.637)  # stricter than the engine's mate bound
        self.assertEqual(job.threshold, recorded["distance"])

        face = search_job_result(job=job)["faces"][0]
        self.assertEqual(face["decision"], "likely")
        self.assertEqual(face["threshold"], round(recorded["distance"], 4))
        self.assertEqual(set(face["quality"]), {"eye_distance_px", "sharpness", "usable"})
        self.assertTrue(face["quality"]["usable"])
        self.assertGreater(face["quality"]["eye_distance_px"], 30)
        first, second = face["candidates"][:2]
        self.assertEqual((first["profile"], first["match"]), ("P01", True))
        self.assertLessEqual(first["distance"], face["threshold"])
        self.assertFalse(second["match"])
        self.assertGreater(second["distance"], face["threshold"])
        # The audit of the results names the decision and the threshold's version.
        entry = AuditEntry.objects.filter(action=AuditEntry.Action.SEARCH_RESULTS).latest("id")
        self.assertEqual(entry.data["decisions"], ["likely"])
        self.assertEqual(entry.data["thresholds"][YUNET_SFACE]["calibration_id"], latest.id)

    def test_a_person_not_enrolled_is_no_likely_candidate(self):
        face = search_job_result(job=self.search(photo_bytes("img16.jpg")))["faces"][0]  # P05: not in the gallery
        self.assertEqual(face["decision"], "none")
        self.assertFalse(any(c["match"] for c in face["candidates"]))
        self.assertEqual(len(face["candidates"]), 4)  # still listed, one per profile

    def test_a_face_too_blurred_is_low_quality_and_never_likely(self):
        job = self.search(_blurred("img5.jpg", 20))
        face = search_job_result(job=job)["faces"][0]
        self.assertEqual(face["decision"], "low_quality")
        self.assertFalse(face["quality"]["usable"])
        self.assertLess(face["quality"]["sharpness"], 4)
        self.assertFalse(any(c["match"] for c in face["candidates"]))
        self.assertEqual(ProbeFace.objects.get(probe=job.probe).quality["below"], ["blurred"])
        self.assertFalse(Candidate.objects.filter(job=job, likely=True).exists())

    def test_the_page_says_why(self):
        job = self.search(photo_bytes("img5.jpg"))
        sign_in(self.client, self.alice)
        page = self.client.get(reverse("search:job-detail", args=[job.code])).content.decode()
        self.assertIn('data-decision="likely"', page)
        self.assertIn("Likely candidate", page)
        self.assertIn("Eyes apart", page)
        self.assertIn("was set for the 13 gallery faces searched", page)
        self.assertIn("from 2265 labelled and 63 gallery pairs", page)
        blurred = self.search(_blurred("img5.jpg", 20))
        page = self.client.get(reverse("search:job-detail", args=[blurred.code])).content.decode()
        self.assertIn("Too small or blurred to compare reliably", page)
        self.assertIn("For an examiner only", page)

    def test_a_person_recorded_twice_is_listed_as_a_possible_duplicate_and_left_out(self):
        gallery_make(owner=self.north, name="Wanted", people={"P01 (wanted)": _paths(["img7.jpg"])})
        made = calibration.calibrate(agency_id=self.north.id, engine=YUNET_SFACE)
        duplicate_profiles = [set(pair["profile_ids"]) for pair in made.possible_duplicates]
        p01 = set(
            FaceImage.objects.filter(profile__display_name__startswith="P01").values_list("profile_id", flat=True)
        )
        self.assertTrue(duplicate_profiles)
        self.assertTrue(all(pair == p01 for pair in duplicate_profiles), made.possible_duplicates)
        # 14 faces: 91 pairs, 15 + 4 mates of the same profile... minus the listed duplicates.
        self.assertEqual(made.gallery_pairs, 91 - 15 - len(made.possible_duplicates))


class CalibrationVersionTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        cls.gallery = gallery_make(
            owner=cls.north, people={who: _paths(names) for who, names in itertools.islice(PEOPLE.items(), 3)}
        )

    def test_a_new_version_only_when_the_galleries_change(self):
        first = calibration.calibrations_refresh()
        self.assertEqual({(c.agency_id, c.version) for c in first}, {(None, 1), (self.north.id, 1)})
        self.assertEqual(calibration.calibrations_refresh(), [])
        gallery_make(owner=self.north, name=self.gallery.name, people={"P04": _paths(["img53.jpg"])})
        again = calibration.calibrations_refresh()
        self.assertEqual({(c.agency_id, c.version) for c in again}, {(None, 2), (self.north.id, 2)})
        self.assertEqual(again[0].gallery_faces, 11)
        self.assertEqual(
            AuditEntry.objects.filter(action=AuditEntry.Action.THRESHOLD_CALIBRATED, agency=self.north).count(), 2
        )

    def test_a_change_of_the_setting_is_an_audit_entry_and_moves_the_threshold(self):
        before = calibration.search_thresholds(agency_id=self.north.id)[YUNET_SFACE]
        with override_settings(OPEN_SET_EXPECTED_FALSE=0.001):
            (made,) = [c for c in calibration.calibrations_refresh() if c.agency_id == self.north.id]
            after = calibration.search_thresholds(agency_id=self.north.id)[YUNET_SFACE]
        entry = AuditEntry.objects.get(action=AuditEntry.Action.THRESHOLD_SETTING_CHANGED, agency=self.north)
        self.assertEqual(entry.data["before"]["OPEN_SET_EXPECTED_FALSE"], 0.01)
        self.assertEqual(entry.data["after"]["OPEN_SET_EXPECTED_FALSE"], 0.001)
        self.assertEqual(made.version, 2)
        self.assertLess(after.distance, before.distance)

    def test_a_gallery_too_small_for_its_own_pairs_uses_the_labelled_pairs_alone(self):
        tiny = gallery_make(
            owner=self.south, name="Tiny", people={"P01": _paths(["img1.jpg"]), "P02": _paths(["img26.jpg"])}
        )
        self.assertEqual(tiny.face_images.count(), 2)
        threshold = calibration.search_thresholds(agency_id=self.south.id)[YUNET_SFACE]
        self.assertEqual((threshold.gallery_pairs, threshold.labelled_pairs, threshold.gallery_faces), (0, 2265, 2))

    def test_a_threshold_setting_outside_the_data_is_refused_with_the_supported_range(self):
        with override_settings(SFACE_MATCH_THRESHOLD=0.9):
            (problem,) = calibration.threshold_settings_problems()
            self.assertIn("SFACE_MATCH_THRESHOLD=0.9 is outside what the labelled pairs support", problem)
            self.assertRegex(problem, r"0\.55\d–0\.6\d\d")
            with self.assertRaises(ImproperlyConfigured):
                calibration.search_thresholds(agency_id=self.north.id)
            with self.assertRaises(SystemCheckError):
                call_command("check")
        with override_settings(OPEN_SET_EXPECTED_FALSE=0):
            self.assertIn("OPEN_SET_EXPECTED_FALSE=0 is outside", calibration.threshold_settings_problems()[0])


class NoGalleryTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()

    def test_an_agency_with_no_searchable_gallery_is_told_before_it_can_search(self):
        sign_in(self.client, self.alice)
        page = self.client.get(reverse("portal:case-detail", args=[self.case.code])).content.decode()
        self.assertIn("Your agency has no gallery it may search", page)
        gallery_make(owner=self.south, name="Shared", people={"P01": _paths(["img1.jpg"])}).shared_with.add(self.north)
        page = self.client.get(reverse("portal:case-detail", args=[self.case.code])).content.decode()
        self.assertNotIn("Your agency has no gallery it may search", page)  # a gallery shared with it counts
