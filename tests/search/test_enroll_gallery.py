"""The enroll_gallery command-line contract, on a folder built from the shared photos."""

import io
import json
import os

from django.core.management import CommandError, call_command
from django.test import TestCase

from search.models import FaceImage, Gallery, Profile
from tests.base import AgencyFixtureMixin, faces_dir, media_files


class EnrollGalleryTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()

    def make_folder(self, tmp: str) -> str:
        layout = {"Alex Example": ["img1.jpg", "img2.jpg"], "Sam Example": ["img67.jpg"]}
        for person, names in layout.items():
            os.makedirs(os.path.join(tmp, person))
            for name in names:
                os.symlink(faces_dir() / name, os.path.join(tmp, person, name))
        with open(os.path.join(tmp, "Alex Example", "profile.json"), "w") as meta:
            json.dump({"date_of_birth": "1980-02-03", "aliases": ["Al"], "record_reference": "BK-1"}, meta)
        with open(os.path.join(tmp, "Alex Example", "notes.txt"), "w") as junk:
            junk.write("not a photo")
        os.makedirs(os.path.join(tmp, "Nobody"))
        with open(os.path.join(tmp, "Nobody", "broken.jpg"), "wb") as broken:
            broken.write(b"\xff\xd8\xff\xe0 truncated")
        return tmp

    def enrol(self, folder: str) -> dict:
        out = io.StringIO()
        call_command("enroll_gallery", folder, "--agency", "north", "--gallery", "Bookings",
                     "--legal-basis", "Police Act s.64", "--source-type", "booking", "--responsible", "Records unit",
                     "--retention-days", "3650", "--json", stdout=out, stderr=io.StringIO())
        return json.loads(out.getvalue())

    def test_it_enrols_one_profile_per_folder_and_reports_what_it_skipped(self):
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            result = self.enrol(self.make_folder(tmp))
        self.assertEqual(result["profiles"], 2)
        self.assertEqual(result["faces_enrolled"], 3)
        self.assertEqual(result["files_skipped"], 2)
        reasons = {os.path.basename(s["file"]): s["reason"] for s in result["skipped"]}
        self.assertIn("not an image", reasons["notes.txt"])
        self.assertIn("truncated or damaged", reasons["broken.jpg"])
        self.assertEqual([os.path.basename(n["file"]) for n in result["notes"]], ["img67.jpg"])
        self.assertIn("2 faces", result["notes"][0]["note"])
        gallery = Gallery.objects.get(name="Bookings")
        self.assertEqual(gallery.legal_basis, "Police Act s.64")
        alex = Profile.objects.get(gallery=gallery, display_name="Alex Example")
        self.assertEqual((str(alex.date_of_birth), alex.aliases, alex.record_reference),
                         ("1980-02-03", ["Al"], "BK-1"))
        self.assertFalse(Profile.objects.filter(display_name="Nobody").exists())
        from portal.models import AuditEntry

        entry = AuditEntry.objects.get(action="gallery_enrolled")
        self.assertEqual((entry.agency, entry.data["faces_enrolled"], entry.data["skipped"]), (self.north, 3, 2))
        # Each enrolled face has its image and its aligned crop on disk, and nothing else was written.
        stored = {name for f in FaceImage.objects.all() for name in (f.image.name, f.crop.name)}
        self.assertEqual(len(stored), 6)
        self.assertTrue(stored <= set(media_files()))

    def test_enrolling_the_same_folder_again_skips_every_photo_as_a_duplicate(self):
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            folder = self.make_folder(tmp)
            self.enrol(folder)
            again = self.enrol(folder)
        self.assertEqual(again["faces_enrolled"], 0)
        self.assertEqual(sum("already enrolled" in s["reason"] for s in again["skipped"]), 3)
        self.assertEqual(FaceImage.objects.count(), 3)

    def test_it_refuses_a_missing_folder_and_an_unknown_agency(self):
        with self.assertRaisesMessage(CommandError, "is not a folder"):
            call_command("enroll_gallery", "/nonexistent", "--agency", "north", "--gallery", "G",
                         "--legal-basis", "x")
        with self.assertRaisesMessage(CommandError, "No agency"):
            call_command("enroll_gallery", str(faces_dir()), "--agency", "nowhere", "--gallery", "G",
                         "--legal-basis", "x")
