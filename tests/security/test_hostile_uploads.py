"""Hostile uploads on the three pages that take a photo: the probe upload (an officer), the gallery
enrolment (an agency admin) and the public data-subject request page (anyone).

Every case of the generated corpus is sent to each page as a raw multipart body (so that file names
arrive exactly as an attacker writes them). Each is refused with a 4xx and a plain message, leaving
no row, no stored file and no temporary upload behind; or accepted, and what is stored is a clean
JPEG re-encode: no EXIF, GPS, XMP, ICC profile or comment, no appended payload, upright, under a
name the product chose.
"""

from __future__ import annotations

import html
import io
import re
import secrets
import shutil
import tempfile
from pathlib import Path

import PIL
from django.conf import settings
from django.test import TestCase, override_settings
from django.urls import reverse
from PIL import Image

from portal.models import AuditEntry
from search.models import Candidate, FaceImage, Gallery, Probe, ProbeFace, Profile, SearchJob, SubjectRequest, Tombstone
from tests.base import AgencyFixtureMixin, faces_dir, media_files, sign_in
from tests.security.corpus import HOSTILE_CASES, Case, encoded

FACE_PHOTO = "img10.jpg"  # one clear face, small enough to detect quickly
SECOND_PHOTO = "img11.jpg"  # the same person again
PRODUCT_MODELS = (Probe, SearchJob, ProbeFace, Candidate, Gallery, Profile, FaceImage, SubjectRequest, Tombstone)
NEW_GALLERY = {
    "new_name": "Booking photos",
    "source_type": "booking",
    "legal_basis": "Police Act s.64",
    "legal_basis_reference": "PA 1984 s.64A",
    "responsible_person": "Records unit",
    "retention_days": "3650",
    "display_name": "Alex Example",
}
PROBE_FIELDS = {"purpose": "Robbery", "justification": "CCTV still of the robbery suspect at the station"}
PUBLIC_FIELDS = {"kind": "access", "contact": "person@example.org"}
# What a message for an officer or the public must not read like.
TECHNICAL_WORDS = (
    "Traceback",
    "PIL",
    "Pillow",
    "cannot identify",
    "Errno",
    "MAX_TEXT_CHUNK",
    "broken data stream",
    "Exception",
    "NoneType",
)
# Bytes that would mean metadata or a payload survived the re-encode.
LEFTOVER_MARKERS = (
    b"Exif\x00\x00",
    b"HostileCam",
    b"xmpmeta",
    b"ICC_PROFILE",
    b"51.5N",
    b"<script",
    b"<html",
    b"PK\x03\x04",
    b"payload.html",
)


def multipart(fields: dict[str, str], files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body written by hand: the test client would clean the file names."""
    boundary = f"hostile{secrets.token_hex(8)}"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    for field, file_name, data in files:
        quoted = file_name.replace("\\", "\\\\").replace('"', "%22")
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{quoted}"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class HostileUploadTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        cls.face = Image.open(faces_dir() / FACE_PHOTO).convert("RGB")
        cls.second_jpeg = (faces_dir() / SECOND_PHOTO).read_bytes()

    def setUp(self):
        # Django spools big uploads to this folder: it must be empty again after every request.
        self.upload_dir = tempfile.mkdtemp(prefix="hostile-uploads-")
        self.addCleanup(shutil.rmtree, self.upload_dir, ignore_errors=True)
        self.enterContext(override_settings(FILE_UPLOAD_TEMP_DIR=self.upload_dir))

    # --- The three pages ------------------------------------------------------------------------

    def post(self, url: str, fields: dict, files: list[tuple[str, str, bytes]]):
        body, content_type = multipart(fields, files)
        with self.captureOnCommitCallbacks(execute=False):  # no worker: the search is only queued
            return self.client.post(url, body, content_type=content_type, HTTP_ACCEPT="application/json")

    def send_probe(self, files):
        sign_in(self.client, self.alice)
        return self.post(
            reverse("search:probe-upload", args=[self.case.code]),
            PROBE_FIELDS,
            [("photos" if field is None else field, name, data) for field, name, data in files],
        )

    def send_enrolment(self, files):
        sign_in(self.client, self.erin)
        return self.post(
            reverse("search:gallery-enrol"),
            NEW_GALLERY,
            [("photos" if field is None else field, name, data) for field, name, data in files],
        )

    def send_public_request(self, files):
        self.client.logout()
        return self.post(
            reverse("privacy:request-new"),
            PUBLIC_FIELDS,
            [("photo" if field is None else field, name, data) for field, name, data in files],
        )

    ENTRY_POINTS = ("probe", "enrolment", "public_request")

    def send(self, entry_point: str, files):
        return getattr(self, f"send_{entry_point}")(files)

    # --- What is left behind --------------------------------------------------------------------

    def snapshot(self) -> dict:
        return {
            "rows": {model.__name__: model.objects.count() for model in PRODUCT_MODELS},
            "audit": AuditEntry.objects.count(),
            "media": set(media_files()),
        }

    def stored_names(self, entry_point: str, before: dict) -> list[str]:
        """The files the rows created by the request point to."""
        if entry_point == "probe":
            return [probe.image.name for probe in Probe.objects.order_by("id")[before["rows"]["Probe"] :]]
        if entry_point == "enrolment":
            faces = FaceImage.objects.order_by("id")[before["rows"]["FaceImage"] :]
            return [name for face in faces for name in (face.image.name, face.crop.name)]
        return [
            request.photo.name for request in SubjectRequest.objects.order_by("id")[before["rows"]["SubjectRequest"] :]
        ]

    def refusal_message(self, entry_point: str, response) -> str:
        """What the page tells the sender: the JSON errors, or the form's error texts."""
        if entry_point == "enrolment":
            return " ".join(response.json()["errors"].values())
        errors = re.findall(r'class="form-error" role="alert">(.*?)</(?:p|div)>', response.content.decode(), re.S)
        return html.unescape(" ".join(errors))

    # --- Checks ---------------------------------------------------------------------------------

    def assert_refused(self, entry_point: str, files, expected: str, *, status: int = 400) -> None:
        before = self.snapshot()
        response = self.send(entry_point, files)
        self.assertEqual(response.status_code, status)
        message = self.refusal_message(entry_point, response)
        self.assertIn(expected, message)
        for word in TECHNICAL_WORDS:
            self.assertNotIn(word, message)
        after = self.snapshot()
        self.assertEqual(after["rows"], before["rows"], "a refused upload left rows behind")
        self.assertEqual(after["media"], before["media"], "a refused upload left files behind")
        self.assertEqual(list(Path(self.upload_dir).iterdir()), [], "a temporary upload file was left behind")
        new_audit = list(AuditEntry.objects.order_by("id")[before["audit"] :])
        if entry_point == "enrolment":  # the attempt itself is recorded, and says nothing was kept
            self.assertEqual(
                [(e.action, e.data["faces_enrolled"], e.target_id) for e in new_audit],
                [(AuditEntry.Action.GALLERY_ENROLLED, 0, "")],
            )
        elif entry_point == "public_request":  # the attempt counts toward the page's limit, and holds nothing
            self.assertEqual(
                [(e.action, e.target_id, e.detail, e.data) for e in new_audit],
                [(AuditEntry.Action.SUBJECT_REQUEST_ATTEMPTED, "", "", {})],
            )
        else:
            self.assertEqual(new_audit, [])

    def assert_accepted(self, entry_point: str, files, case: Case | None = None, *, stored: int = 1) -> None:
        before = self.snapshot()
        response = self.send(entry_point, files)
        if entry_point == "enrolment":
            result = response.json()
            self.assertEqual(
                (response.status_code, [r["ok"] for r in result["results"]]), (200, [True] * stored), result
            )
        elif entry_point == "probe":
            self.assertEqual(response.status_code, 302, html.unescape(response.content.decode())[-3000:])
        else:
            self.assertContains(response, "SR-")
        names = self.stored_names(entry_point, before)
        per_upload = 2 if entry_point == "enrolment" else 1  # a gallery face keeps its photo and its crop
        self.assertEqual(len(names), stored * per_upload)
        self.assertEqual(set(media_files()) - before["media"], set(names), "files other than the re-encodes")
        self.assertEqual(list(Path(self.upload_dir).iterdir()), [], "a temporary upload file was left behind")
        for name in names:
            self.assert_clean_reencode(name)
        photo = names[0]
        if case is not None and case.rotated:
            with Image.open(Path(settings.MEDIA_ROOT) / photo) as upright:
                self.assertEqual(upright.size, self.face.size)
        for kept in [
            *Probe.objects.values_list("original_name", flat=True),
            *FaceImage.objects.values_list("source_name", flat=True),
        ]:
            self.assertLessEqual(len(kept), 255)
            self.assertFalse({"/", "\\"} & set(kept), kept)

    def assert_clean_reencode(self, name: str) -> None:
        media_root = Path(settings.MEDIA_ROOT).resolve()
        path = (media_root / name).resolve()
        self.assertTrue(path.is_relative_to(media_root), name)
        for part in ("..", "etc", "cron", "Windows", "evil", "<", '"', "x" * 50):
            self.assertNotIn(part, name)
        data = path.read_bytes()
        for marker in LEFTOVER_MARKERS:
            self.assertNotIn(marker, data, f"{marker!r} survived in {name}")
        self.assertTrue(data.endswith(b"\xff\xd9"), "bytes after the end of the JPEG")
        with Image.open(io.BytesIO(data)) as stored:
            self.assertEqual((stored.format, stored.mode), ("JPEG", "RGB"))
            self.assertEqual(dict(stored.getexif()), {})
            self.assertFalse({"exif", "icc_profile", "xmp", "comment", "photoshop"} & set(stored.info), stored.info)

    def run_case(self, case: Case) -> None:
        data = case.data(self.face)
        for entry_point in self.ENTRY_POINTS:
            with self.subTest(entry_point=entry_point):
                files = [(None, case.file_name, data)]
                if case.refused:
                    self.assert_refused(entry_point, files, case.refused)
                else:
                    self.assert_accepted(entry_point, files, case)

    # --- Cases that are about the request rather than the file ------------------------------------

    def test_two_files_where_the_public_page_expects_one_are_refused(self):
        jpeg = encoded(self.face)
        self.assert_refused(
            "public_request", [(None, "a.jpg", jpeg), (None, "b.jpg", self.second_jpeg)], "Send one photo only"
        )

    def test_two_files_on_the_pages_that_take_several_are_each_handled(self):
        jpeg = encoded(self.face)
        for entry_point in ("probe", "enrolment"):
            with self.subTest(entry_point=entry_point):
                self.assert_accepted(entry_point, [(None, "a.jpg", jpeg), (None, "b.jpg", self.second_jpeg)], stored=2)

    def test_a_file_in_a_field_no_page_reads_is_never_stored(self):
        jpeg = encoded(self.face)
        for entry_point in self.ENTRY_POINTS:
            with self.subTest(entry_point=entry_point):
                self.assert_accepted(
                    entry_point, [(None, "face.jpg", jpeg), ("smuggled", "other.jpg", self.second_jpeg)]
                )

    def test_a_file_named_only_dot_dot_is_no_photo_at_all(self):
        jpeg = encoded(self.face)
        expected = {
            "probe": "Choose at least one photo.",
            "enrolment": "Choose at least one photo.",
            "public_request": "This field is required.",
        }
        for entry_point in self.ENTRY_POINTS:
            with self.subTest(entry_point=entry_point):
                before = self.snapshot()
                response = self.send(entry_point, [(None, "..", jpeg)])
                self.assertEqual(response.status_code, 400)
                self.assertIn(expected[entry_point], self.refusal_message(entry_point, response))
                self.assertEqual(self.snapshot()["rows"], before["rows"])
                self.assertEqual(self.snapshot()["media"], before["media"])

    def test_a_refusal_names_the_file_without_running_its_markup(self):
        response = self.send_probe([(None, '"><img src=x onerror=alert(1)>.gif', encoded(self.face, "GIF"))])
        self.assertContains(response, "Unsupported image format GIF", status_code=400)
        self.assertNotContains(response, "<img src=x onerror", status_code=400)


def _case_test(case: Case):
    def test(self):
        self.run_case(case)

    outcome = f"refused ({case.refused})" if case.refused else "accepted as a clean re-encode"
    test.__doc__ = f"{case.name}: {outcome} on the probe, enrolment and public request pages."
    return test


for _case in HOSTILE_CASES:
    setattr(HostileUploadTests, f"test_{_case.name}", _case_test(_case))


class PillowVersionTests(TestCase):
    def test_pillow_is_at_least_12_3(self):
        # 12.3 fixed decoder CVEs that a hostile upload could reach.
        installed = tuple(int(part) for part in PIL.__version__.split(".")[:2])
        self.assertGreaterEqual(installed, (12, 3), f"Pillow {PIL.__version__} is installed")
        pinned = next(
            line
            for line in (settings.BASE_DIR / "requirements.txt").read_text().splitlines()
            if line.lower().startswith("pillow==")
        )
        self.assertGreaterEqual(tuple(int(part) for part in pinned.split("==")[1].split(".")[:2]), (12, 3))
