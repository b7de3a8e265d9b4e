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
        call_command(
            "enroll_gallery",
            folder,
            "--agency",
            "north",
            "--gallery",
            "Bookings",
            "--legal-basis",
            "Police Act s.64",
            "--source-type",
            "booking",
            "--responsible",
            "Records unit",
            "--retention-days",
            "3650",
            "--json",
            stdout=out,
            stderr=io.StringIO(),
        )
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
        # img67's second "face" (a blue light HOG takes for one, 37 px at detection size) is narrower than the
        # quick detector's 80 px; its 181 px face is wide enough that nothing the ambiguity rule weighs is missed.
        self.assertEqual(result["notes"], [])
        gallery = Gallery.objects.get(name="Bookings")
        self.assertEqual(gallery.legal_basis, "Police Act s.64")
        alex = Profile.objects.get(gallery=gallery, display_name="Alex Example")
        self.assertEqual((str(alex.date_of_birth), alex.aliases, alex.record_reference), ("1980-02-03", ["Al"], "BK-1"))
        self.assertFalse(Profile.objects.filter(display_name="Nobody").exists())
        from portal.models import AuditEntry

        entry = AuditEntry.objects.get(action="gallery_enrolled")
        self.assertEqual((entry.agency, entry.data["faces_enrolled"], entry.data["skipped"]), (self.north, 3, 2))
        # Each enrolled face has its image and its aligned crop on disk, and nothing else was written.
        stored = {name for f in FaceImage.objects.all() for name in (f.image.name, f.crop.name)}
        self.assertEqual(len(stored), 6)
        self.assertTrue(stored <= set(media_files()))

    def test_two_worker_processes_enrol_what_one_process_enrols(self):
        import numpy as np

        from search.enrolment import EnrolmentItem, gallery_enrol_batch, gallery_get_or_create
        from tests.base import GALLERY_PROVENANCE

        names = ["img1.jpg", "img2.jpg", "img17.jpg", "img67.jpg"]
        items = [EnrolmentItem(path=str(faces_dir() / name), display_name=name) for name in names]
        items.append(EnrolmentItem(path="/nonexistent/photo.jpg", display_name="Missing"))
        summaries = {}
        for workers in (1, 2):
            gallery, _ = gallery_get_or_create(
                owner=self.north, name=f"Workers {workers}", legal_basis="Act", **GALLERY_PROVENANCE
            )
            summaries[workers] = gallery_enrol_batch(
                gallery=gallery, gallery_created=True, items=items, workers=workers
            ).as_dict()
        self.assertEqual(summaries[1]["faces_enrolled"], 4)
        for key in ("faces_enrolled", "profiles", "files_skipped", "skip_reasons", "notes"):
            self.assertEqual(summaries[1][key], summaries[2][key], key)
        for name in names:
            one, two = (FaceImage.objects.get(gallery__name=f"Workers {w}", source_name=name) for w in (1, 2))
            self.assertEqual(one.content_hash, two.content_hash)
            self.assertEqual(one.box, two.box)
            np.testing.assert_allclose(one.descriptor.embedding, two.descriptor.embedding, atol=1e-6)

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
            call_command("enroll_gallery", "/nonexistent", "--agency", "north", "--gallery", "G", "--legal-basis", "x")
        with self.assertRaisesMessage(CommandError, "No agency"):
            call_command(
                "enroll_gallery", str(faces_dir()), "--agency", "nowhere", "--gallery", "G", "--legal-basis", "x"
            )
