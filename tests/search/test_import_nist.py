"""ANSI/NIST-ITL booking records: real messages built with nistitl from the shared photos, imported through
the import_nist command, then found by search_photo."""

import io
import json
import os
import tempfile
from datetime import date

import nistitl
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import TestCase
from PIL import Image

from portal.models import AuditEntry
from search.enrolment import NistRefused, gallery_get_or_create, nist_files_import, nist_subject_read
from search.models import FaceImage, Gallery, Profile
from tests.base import GALLERY_PROVENANCE, AgencyFixtureMixin, faces_dir, media_files, photo_bytes
from tests.factories import agency_make, user_make


def nist_message(*faces, sid="SID-1001", tcn="TCN-77", nam="DOE,JOHN", dob="19800203", image_type="FACE"):
    """An ANSI/NIST-ITL transaction: Type-1, a Type-2 (SID, NAM, DOB) and one Type-10 per image (bytes)."""
    message = nistitl.Message()
    message.TOT = "CAR"
    message[0].TCN = tcn
    descriptive = nistitl.AsciiRecord(2)
    descriptive.IDC = 0
    for tag, value in ((15, sid), (18, nam), (22, dob)):
        if value:
            setattr(descriptive, f"_{tag}", value)
    message += descriptive
    for idc, image in enumerate(faces, start=1):
        record = nistitl.AsciiRecord(10)
        record.IDC = idc
        record.IMT = image_type
        record.SRC = "NORTHPD01"
        record.CGA = "JPEGB" if image[:3] == b"\xff\xd8\xff" else ("PNG" if image[:4] == b"\x89PNG" else "JP2")
        record.DATA = image
        message += record
    return message.NIST


def jpeg2000(name: str) -> bytes:
    buffer = io.BytesIO()
    with Image.open(io.BytesIO(photo_bytes(name))) as image:
        image.convert("RGB").save(buffer, "JPEG2000", irreversible=True)
    return buffer.getvalue()


def wrong_length(data: bytes) -> bytes:
    """The Type-2 record's LEN (2.001) one byte too long."""
    start = data.index(b"2.001:") + len(b"2.001:")
    end = data.index(b"\x1d", start)
    return data[:start] + str(int(data[start:end]) + 1).encode() + data[end:]


class NistImportTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def write(self, name: str, data: bytes) -> str:
        path = os.path.join(self.tmp.name, name)
        with open(path, "wb") as out:
            out.write(data)
        return path

    def run_import(self, *paths, agency="north", gallery="Bookings") -> dict:
        out = io.StringIO()
        call_command(
            "import_nist",
            *paths,
            "--agency",
            agency,
            "--gallery",
            gallery,
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

    def test_each_file_is_one_subject_keyed_by_its_sid_with_name_and_date_of_birth(self):
        doe = self.write("doe.an2", nist_message(photo_bytes("img1.jpg"), photo_bytes("img2.jpg")))
        roe = self.write(
            "roe.nist", nist_message(photo_bytes("img16.jpg"), sid="SID-2002", nam="ROE,RICHARD", dob="19751231")
        )
        result = self.run_import(doe, roe)
        self.assertEqual(
            set(result) - {"threshold"},
            {
                "gallery",
                "gallery_id",
                "gallery_created",
                "profiles",
                "faces_enrolled",
                "files_skipped",
                "skipped",
                "skip_reasons",
                "notes",
            },
        )
        self.assertEqual((result["profiles"], result["faces_enrolled"], result["files_skipped"]), (2, 3, 0))
        self.assertTrue(result["gallery_created"])
        self.assertIn("threshold", result)
        doe_profile = Profile.objects.get(record_reference="SID-1001")
        self.assertEqual((doe_profile.display_name, doe_profile.date_of_birth), ("JOHN DOE", date(1980, 2, 3)))
        self.assertEqual(
            sorted(doe_profile.face_images.values_list("source_name", flat=True)),
            ["doe.an2 record 10.1", "doe.an2 record 10.2"],
        )
        self.assertEqual(Profile.objects.get(record_reference="SID-2002").display_name, "RICHARD ROE")
        gallery = Gallery.objects.get(name="Bookings")
        self.assertEqual(
            (gallery.owner, gallery.legal_basis, gallery.source_type), (self.north, "Police Act s.64", "booking")
        )
        entry = AuditEntry.objects.get(action="gallery_enrolled")
        self.assertEqual((entry.data["format"], entry.data["faces_enrolled"]), ("ANSI/NIST-ITL", 3))

    def test_a_second_import_of_the_same_sid_adds_to_the_same_profile_even_under_another_name(self):
        self.run_import(self.write("first.an2", nist_message(photo_bytes("img1.jpg"))))
        again = self.run_import(self.write("second.an2", nist_message(photo_bytes("img2.jpg"), nam="DOE,JOHNNY")))
        self.assertEqual((again["faces_enrolled"], again["gallery_created"]), (1, False))
        profile = Profile.objects.get()
        self.assertEqual(
            (profile.record_reference, profile.display_name, profile.face_images.count()), ("SID-1001", "JOHN DOE", 2)
        )
        # The very same record again is a duplicate photo, refused as any photo would be; nothing imported: exit 1.
        with self.assertRaises(CommandError) as refused:
            self.run_import(self.write("third.an2", nist_message(photo_bytes("img2.jpg"))))
        self.assertIn("already enrolled", str(refused.exception))
        self.assertEqual(FaceImage.objects.count(), 2)

    def test_records_of_another_image_type_beside_a_face_are_noted_not_imported(self):
        message = nistitl.Message()
        message.parse(nist_message(photo_bytes("img16.jpg")))
        tattoo = nistitl.AsciiRecord(10)
        tattoo.IDC = 9
        tattoo.IMT = "SMT"
        tattoo.DATA = photo_bytes("img1.jpg")
        message += tattoo
        result = self.run_import(self.write("mixed.an2", message.NIST))
        self.assertEqual(result["faces_enrolled"], 1)
        self.assertIn("Image type SMT (10.003), not FACE", result["notes"][0]["note"])
        self.assertTrue(result["notes"][0]["file"].endswith("mixed.an2 record 10.9"))

    def test_without_a_sid_the_subject_is_keyed_by_the_tcn(self):
        result = self.run_import(self.write("tcn.eft", nist_message(photo_bytes("img16.jpg"), sid="", tcn="NPD-42")))
        self.assertEqual(result["faces_enrolled"], 1)
        self.assertEqual(Profile.objects.get().record_reference, "TCN NPD-42")

    def test_a_jpeg_2000_face_is_decoded_and_enrolled(self):
        result = self.run_import(self.write("j2k.an2", nist_message(jpeg2000("img16.jpg"), sid="SID-J2K")))
        self.assertEqual(result["faces_enrolled"], 1, result)
        face = FaceImage.objects.get()
        self.assertTrue(face.image.name.endswith(".jpg"))

    def test_bad_files_are_refused_with_their_reason_and_the_rest_of_the_batch_is_imported(self):
        good = nist_message(photo_bytes("img1.jpg"))
        garbage_face = nist_message(b"\xff\xd8\xff\xe0 not really a jpeg", sid="SID-BAD")
        files = {
            "good.an2": good,
            "truncated.an2": nist_message(photo_bytes("img16.jpg"), sid="SID-T")[:-2000],
            "length.an2": wrong_length(nist_message(photo_bytes("img16.jpg"), sid="SID-L")),
            "no-face.an2": nist_message(sid="SID-N"),
            "scar.an2": nist_message(photo_bytes("img16.jpg"), sid="SID-S", image_type="SMT"),
            "random.nist": os.urandom(3000),
            "photo.nist": self._png(),
            "unreadable.an2": garbage_face,
            "other-format.an2": nist_message(b"GIF89a" + b"\0" * 100, sid="SID-G"),
        }
        paths = [self.write(name, data) for name, data in files.items()]
        before = set(media_files())
        result = self.run_import(*paths)
        self.assertEqual((result["profiles"], result["faces_enrolled"], result["files_skipped"]), (1, 1, 8))
        reasons = {os.path.basename(s["file"]).split(" record ")[0]: s for s in result["skipped"]}
        self.assertIn("truncated", reasons["truncated.an2"]["reason"])
        self.assertEqual(reasons["truncated.an2"]["code"], "nist_truncated")
        self.assertIn("Wrong record length", reasons["length.an2"]["reason"])
        self.assertIn("no Type-10 face record", reasons["no-face.an2"]["reason"])
        self.assertIn("of type SMT, not FACE", reasons["scar.an2"]["reason"])
        self.assertIn("Not an ANSI/NIST-ITL file", reasons["random.nist"]["reason"])
        self.assertIn("it is a photo", reasons["photo.nist"]["reason"])
        self.assertIn("truncated or damaged", reasons["unreadable.an2"]["reason"])
        self.assertEqual(reasons["unreadable.an2"]["file"].rsplit("/", 1)[-1], "unreadable.an2 record 10.1")
        self.assertIn("not a JPEG, PNG or JPEG 2000", reasons["other-format.an2"]["reason"])
        # Nothing of a refused file is stored: one profile, one face, and no file on disk but its own two.
        self.assertEqual(list(Profile.objects.values_list("record_reference", flat=True)), ["SID-1001"])
        face = FaceImage.objects.get()
        self.assertLessEqual(set(media_files()) - before, {face.image.name, face.crop.name})
        self.assertLessEqual({face.image.name, face.crop.name}, set(media_files()))

    def _png(self) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), (120, 90, 60)).save(buffer, "PNG")
        return buffer.getvalue()

    def test_a_batch_of_only_bad_files_exits_1_and_keeps_no_new_gallery(self):
        path = self.write("bad.an2", nist_message(photo_bytes("img16.jpg"))[:-500])
        with self.assertRaises(CommandError) as refused:
            self.run_import(path)
        self.assertIn("Nothing was imported. bad.an2: The file is truncated", str(refused.exception))
        self.assertFalse(Gallery.objects.exists())
        self.assertFalse(Profile.objects.exists())

    def test_a_minor_is_refused_outside_a_missing_person_gallery(self):
        born = f"{date.today().year - 12}0101"
        with self.assertRaises(CommandError) as refused:
            self.run_import(self.write("minor.an2", nist_message(photo_bytes("img16.jpg"), dob=born)))
        self.assertIn("minor", str(refused.exception))
        self.assertFalse(Profile.objects.exists())

    def test_a_bad_date_of_birth_is_refused_not_guessed(self):
        with self.assertRaises(NistRefused) as refused:
            nist_subject_read(nist_message(photo_bytes("img16.jpg"), dob="19801340"), "x.an2")
        self.assertIn("not a date YYYYMMDD", str(refused.exception))

    def test_another_agency_cannot_import_into_this_gallery(self):
        gallery_get_or_create(owner=self.north, name="Bookings", legal_basis="Act", **GALLERY_PROVENANCE)
        # South naming North's gallery gets a gallery of its own name, never North's.
        result = self.run_import(self.write("s.an2", nist_message(photo_bytes("img16.jpg"))), agency="south")
        south_gallery = Gallery.objects.get(pk=result["gallery_id"])
        self.assertEqual(south_gallery.owner, self.south)
        self.assertFalse(FaceImage.objects.filter(gallery__owner=self.north).exists())
        with self.assertRaises(CommandError):
            self.run_import(self.write("n.an2", nist_message(photo_bytes("img1.jpg"))), agency="nowhere")

    def test_the_service_takes_name_and_bytes(self):
        gallery, created = gallery_get_or_create(owner=self.north, name="API", legal_basis="Act", **GALLERY_PROVENANCE)
        summary = nist_files_import(
            gallery=gallery,
            gallery_created=created,
            files=[("api.an2", nist_message(photo_bytes("img1.jpg"))), ("junk.an2", b"1.001:12")],
            enrolled_by=self.erin,
        )
        result = summary.as_dict()
        self.assertEqual((result["faces_enrolled"], result["files_skipped"]), (1, 1))
        self.assertEqual(FaceImage.objects.get().enrolled_by, self.erin)


@pytest.mark.django_db(transaction=True)
def test_an_imported_subject_is_found_by_search_photo(monkeypatch, tmp_path):
    """Through the real command and a real worker: another photo of P01 finds the imported booking record."""
    north = agency_make("north")
    user_make("alice", agency=north)
    for name, data in {
        "doe.an2": nist_message(photo_bytes("img1.jpg"), photo_bytes("img2.jpg")),
        "roe.an2": nist_message(photo_bytes("img16.jpg"), sid="SID-2002", nam="ROE,RICHARD"),
    }.items():
        (tmp_path / name).write_bytes(data)
    call_command(
        "import_nist",
        str(tmp_path / "doe.an2"),
        str(tmp_path / "roe.an2"),
        "--agency=north",
        "--gallery=Bookings",
        "--legal-basis=Police Act s.64",
        "--source-type=booking",
        "--responsible=Records unit",
        "--retention-days=3650",
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    # The temporary worker search_photo starts reads this test's database and media.
    monkeypatch.setenv("DATABASE_NAME", connection.settings_dict["NAME"])
    monkeypatch.setenv("MEDIA_ROOT", str(settings.MEDIA_ROOT))
    monkeypatch.setenv("CELERY_QUEUE", settings.CELERY_TASK_DEFAULT_QUEUE)
    _offense_categories()
    out = io.StringIO()
    call_command(
        "search_photo",
        os.fspath(faces_dir() / "img5.jpg"),
        "--agency=north",
        "--case=N-NIST-1",
        "--user=alice",
        "--purpose=Robbery",
        "--justification=Identify the suspect of the robbery on CCTV",
        "--json",
        stdout=out,
    )
    result = json.loads(out.getvalue())
    assert result["status"] == "done", result
    face = result["faces"][0]
    first = face["candidates"][0]
    assert (first["profile"], first["match"], face["decision"]) == ("JOHN DOE", True, "likely")
    assert Profile.objects.get(pk=first["profile_id"]).record_reference == "SID-1001"


def _offense_categories():
    """The categories a migration adds: a transactional test's flush removes them."""
    import importlib

    from search.models import OffenseCategory

    migration = importlib.import_module("search.migrations.0004_offense_categories")
    for name in migration.CATEGORIES:
        OffenseCategory.objects.get_or_create(name=name, defaults={"is_missing_person": name == "Missing person"})
