"""Probe preparation: upload to prepare, the faces found on the photo as it stands, recorded edits (crop, rotate,
brightness and contrast, back to the original) with their hashes, searching the chosen faces, and the refusals."""

import hashlib
import io

from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TestCase
from django.urls import reverse
from PIL import Image

from portal.models import AuditEntry
from search import pipeline, preparation
from search.models import Probe, ProbeEdit, SearchJob
from search.services import probe_prepare_start, search_retry_sensitive
from tests.base import AgencyFixtureMixin, faces_dir, media_files, photo_bytes, sign_in
from tests.factories import gallery_make, job_make

JUSTIFICATION = "CCTV still of the robbery suspect at the station"
SELFIE_FACE_4 = [358, 115, 124, 182]  # a face of selfie-many-people.jpg, as the default detector finds it


def stored_hash(field) -> str:
    with default_storage.open(field.name, "rb") as stored:
        return hashlib.sha256(stored.read()).hexdigest()


class PreparationTestCase(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        photos = {"P01": ["img1.jpg", "img2.jpg"], "P02": ["img16.jpg"], "P03": ["img20.jpg"]}
        gallery_make(
            owner=cls.north, people={who: [faces_dir() / name for name in names] for who, names in photos.items()}
        )

    def setUp(self):
        sign_in(self.client, self.alice)

    def prepare(self, name: str) -> Probe:
        probe = probe_prepare_start(
            case=self.case,
            uploaded_by=self.alice,
            data=photo_bytes(name),
            original_name=name,
            purpose="Robbery",
            justification=JUSTIFICATION,
        )
        preparation.probe_preview_run(probe_id=probe.id)  # what the worker does after the commit
        probe.refresh_from_db()
        return probe

    def edit(self, probe: Probe, **fields):
        # The commit's work runs too: the replaced copy is deleted (and the worker's look is queued).
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client.post(reverse("search:probe-edit", args=[probe.code]), fields)
        probe.refresh_from_db()
        if response.status_code == 302:
            preparation.probe_preview_run(probe_id=probe.id)
            probe.refresh_from_db()
        return response

    def search(self, probe: Probe, faces: list[int]):
        response = self.client.post(reverse("search:probe-prepared-search", args=[probe.code]), {"faces": faces})
        return response


class UploadToPrepareTests(PreparationTestCase):
    def test_the_page_uploads_a_photo_to_prepare_and_nothing_is_searched_yet(self):
        upload = SimpleUploadedFile("couple.jpg", photo_bytes("couple.jpg"), content_type="image/jpeg")
        response = self.client.post(
            reverse("search:probe-upload", args=[self.case.code]),
            {"photos": upload, "purpose": "Robbery", "justification": JUSTIFICATION, "prepare": "1"},
        )
        probe = Probe.objects.get(original_name="couple.jpg")
        self.assertRedirects(response, reverse("search:probe-prepare", args=[probe.code]))
        self.assertFalse(probe.jobs.exists())
        self.assertEqual(probe.pending_search["purpose"], "Robbery")
        self.assertTrue(AuditEntry.objects.filter(action=AuditEntry.Action.PROBE_UPLOADED, target_id=str(probe.id)))
        self.assertFalse(AuditEntry.objects.filter(action=AuditEntry.Action.SEARCH_STARTED).exists())
        # Until the worker has looked, the page says it is finding the faces.
        page = self.client.get(reverse("search:probe-prepare", args=[probe.code])).content.decode()
        self.assertIn("Finding the faces", page)
        status = self.client.get(reverse("search:probe-prepare-status", args=[probe.code])).json()
        self.assertEqual(status["ready"], False)
        preparation.probe_preview_run(probe_id=probe.id)
        status = self.client.get(reverse("search:probe-prepare-status", args=[probe.code])).json()
        self.assertEqual((status["ready"], status["faces"]), (True, 2))
        page = self.client.get(reverse("search:probe-prepare", args=[probe.code])).content.decode()
        self.assertEqual(page.count('name="faces"'), 2)
        self.assertEqual(page.count('name="faces" value="1" checked') + page.count('name="faces" value="2" checked'), 2)
        for number in (1, 2):
            thumb = self.client.get(reverse("search:probe-preview-face", args=[probe.code, number]))
            self.assertEqual((thumb.status_code, thumb["Content-Type"]), (200, "image/jpeg"))
        self.assertEqual(self.client.get(reverse("search:probe-preview-face", args=[probe.code, 3])).status_code, 404)

    def test_preparing_takes_one_photo_at_a_time_and_the_same_checks_as_a_search(self):
        files_before = media_files()
        photos = [SimpleUploadedFile(n, photo_bytes(n), content_type="image/jpeg") for n in ("img5.jpg", "img1.jpg")]
        response = self.client.post(
            reverse("search:probe-upload", args=[self.case.code]),
            {"photos": photos, "purpose": "Robbery", "justification": JUSTIFICATION, "prepare": "1"},
        )
        self.assertEqual(response.status_code, 400)
        self.assertIn("Prepare one photo at a time", response.content.decode())
        response = self.client.post(
            reverse("search:probe-upload", args=[self.case.code]),
            {"photos": photos[:1], "purpose": "Robbery", "justification": "too short", "prepare": "1"},
        )
        self.assertEqual(response.status_code, 400)
        self.assertFalse(Probe.objects.exists())
        self.assertEqual(media_files(), files_before)

    def test_a_search_from_the_page_searches_the_faces_of_usable_quality_and_commands_every_face(self):
        upload = SimpleUploadedFile("img5.jpg", photo_bytes("img5.jpg"), content_type="image/jpeg")
        self.client.post(
            reverse("search:probe-upload", args=[self.case.code]),
            {"photos": upload, "purpose": "Robbery", "justification": JUSTIFICATION},
        )
        self.assertEqual(SearchJob.objects.get().face_choice, {"mode": "usable"})
        job = job_make(case=self.case, uploaded_by=self.alice, data=photo_bytes("img5.jpg"))
        self.assertEqual(job.face_choice, {"mode": "all", "found": 1, "searched": 1})


class EditTests(PreparationTestCase):
    def test_a_crop_is_recorded_with_its_hashes_the_original_stays_untouched_and_the_faces_are_found_again(self):
        probe = self.prepare("selfie-many-people.jpg")
        self.assertEqual(len(probe.preview_faces), 6)
        original_name, original_hash = probe.image.name, stored_hash(probe.image)
        x, y, w, h = SELFIE_FACE_4
        response = self.edit(probe, operation="crop", x=x - 40, y=y - 40, width=w + 80, height=h + 80)
        self.assertEqual(response.status_code, 302)
        edit = probe.edits.get()
        self.assertEqual(
            (edit.number, edit.operation, edit.parameters, edit.made_by),
            (1, "crop", {"x": x - 40, "y": y - 40, "width": w + 80, "height": h + 80}, self.alice),
        )
        self.assertEqual(edit.hash_before, original_hash)
        self.assertEqual(edit.hash_after, stored_hash(probe.prepared_image))
        self.assertEqual(probe.prepared_hash, edit.hash_after)
        self.assertEqual((probe.image.name, stored_hash(probe.image)), (original_name, original_hash))
        with default_storage.open(probe.prepared_image.name, "rb") as stored:
            self.assertEqual(Image.open(stored).size, (w + 80, h + 80))
        self.assertEqual(len(probe.preview_faces), 1)
        entry = AuditEntry.objects.get(action=AuditEntry.Action.PROBE_EDITED)
        self.assertEqual((entry.data["hash_before"], entry.data["hash_after"]), (original_hash, edit.hash_after))
        # The page lists the edit with its hashes.
        page = self.client.get(reverse("search:probe-prepare", args=[probe.code])).content.decode()
        self.assertIn(f"{original_hash[:12]}… → {edit.hash_after[:12]}…", page)

    def test_edits_are_rendered_from_the_original_in_order_and_back_to_the_original_removes_the_copy(self):
        probe = self.prepare("img5.jpg")
        self.assertEqual(self.edit(probe, operation="rotate", degrees="90").status_code, 302)
        with default_storage.open(probe.prepared_image.name, "rb") as stored:
            self.assertEqual(Image.open(stored).size, (probe.height, probe.width))
        self.assertEqual(self.edit(probe, operation="rotate", degrees="-90").status_code, 302)
        self.assertEqual(self.edit(probe, operation="adjust", brightness="1.3", contrast="1.1").status_code, 302)
        first_copy = probe.prepared_image.name
        self.assertEqual(self.edit(probe, operation="rotate", degrees="-7.5").status_code, 302)
        self.assertFalse(default_storage.exists(first_copy))  # one prepared copy at a time
        edits = list(probe.edits.values_list("operation", "parameters"))
        self.assertEqual(
            edits,
            [
                ("rotate", {"degrees": 90.0}),
                ("rotate", {"degrees": -90.0}),
                ("adjust", {"brightness": 1.3, "contrast": 1.1}),
                ("rotate", {"degrees": -7.5}),
            ],
        )
        # Each edit starts from the hash the previous one ended at.
        hashes = list(probe.edits.values_list("hash_before", "hash_after"))
        self.assertEqual([before for before, _ in hashes[1:]], [after for _, after in hashes[:-1]])
        self.assertEqual(len(probe.preview_faces), 1)
        last_copy = probe.prepared_image.name
        self.assertEqual(self.edit(probe, operation="reset").status_code, 302)
        self.assertEqual((probe.prepared_image.name, probe.prepared_hash), ("", ""))
        self.assertFalse(default_storage.exists(last_copy))
        self.assertEqual(probe.edits.last().hash_after, stored_hash(probe.image))

    def test_bad_edits_are_refused_with_a_message_and_change_nothing(self):
        probe = self.prepare("img5.jpg")
        files_before = media_files()
        cases = [
            ({"operation": "crop", "x": "200", "y": "0", "width": "300", "height": "100"}, "reaches outside the photo"),
            ({"operation": "crop", "x": "-1", "y": "0", "width": "100", "height": "100"}, "reaches outside the photo"),
            ({"operation": "crop", "x": "0", "y": "0", "width": "10", "height": "10"}, "at least 32×32"),
            ({"operation": "crop", "x": "1.5", "y": "0", "width": "100", "height": "100"}, "whole number"),
            ({"operation": "crop", "x": "0", "y": "0", "width": "100"}, "must be a number"),
            ({"operation": "rotate", "degrees": "ninety"}, "The rotation must be a number"),
            ({"operation": "rotate", "degrees": "nan"}, "finite"),
            ({"operation": "rotate", "degrees": "720"}, "between −359 and 359"),
            ({"operation": "adjust", "brightness": "10", "contrast": "1"}, "between 0.2 and 3.0"),
            ({"operation": "adjust", "brightness": "1", "contrast": "1"}, "nothing to change"),
            ({"operation": "reset"}, "already as it was uploaded"),
            ({"operation": "paint"}, "Choose an edit"),
        ]
        for fields, message in cases:
            with self.subTest(fields=fields):
                response = self.edit(probe, **fields)
                self.assertEqual(response.status_code, 400)
                self.assertIn(message, response.content.decode())
        self.assertFalse(ProbeEdit.objects.exists())
        self.assertEqual(media_files(), files_before)
        self.assertFalse(AuditEntry.objects.filter(action=AuditEntry.Action.PROBE_EDITED).exists())

    def test_another_agency_sees_none_of_a_probe_in_preparation(self):
        probe = self.prepare("img5.jpg")
        sign_in(self.client, self.charlie)
        for url in (
            reverse("search:probe-prepare", args=[probe.code]),
            reverse("search:probe-prepare-status", args=[probe.code]),
            reverse("search:probe-preview-face", args=[probe.code, 1]),
            reverse("search:probe-original-image", args=[probe.code]),
        ):
            self.assertEqual(self.client.get(url).status_code, 404, url)
        self.assertEqual(self.edit(probe, operation="rotate", degrees="90").status_code, 404)
        self.assertEqual(self.search(probe, [1]).status_code, 404)
        self.assertFalse(probe.edits.exists())


class ChosenFaceSearchTests(PreparationTestCase):
    def test_one_chosen_face_of_a_group_photo_is_searched_and_the_page_says_so(self):
        probe = self.prepare("selfie-many-people.jpg")
        response = self.search(probe, [4])
        job = SearchJob.objects.get(probe=probe)
        self.assertRedirects(response, reverse("search:job-detail", args=[job.code]), fetch_redirect_response=False)
        self.assertEqual(job.face_choice["numbers"], [4])
        pipeline.search_job_run(job_id=job.id)
        job.refresh_from_db()
        self.assertEqual(job.status, SearchJob.Status.DONE)
        self.assertEqual((job.face_choice["found"], job.face_choice["searched"]), (6, 1))
        face = job.probe.faces.get()
        self.assertGreater(preparation_overlap(face.box, SELFIE_FACE_4), 0.9)
        started = AuditEntry.objects.get(action=AuditEntry.Action.SEARCH_STARTED)
        self.assertEqual(started.data["faces_chosen"], [4])
        page = self.client.get(reverse("search:job-detail", args=[job.code])).content.decode()
        self.assertIn("1 of 6 faces searched: those chosen when the photo was prepared", page)

    def test_a_prepared_probe_is_searched_as_edited_finds_its_person_and_takes_no_edit_afterwards(self):
        probe = self.prepare("img5.jpg")
        self.edit(probe, operation="rotate", degrees="180")
        self.edit(probe, operation="rotate", degrees="180")
        self.assertEqual(self.search(probe, [1]).status_code, 302)
        job = SearchJob.objects.get(probe=probe)
        pipeline.search_job_run(job_id=job.id)
        job.refresh_from_db()
        top = job.candidates.order_by("rank").first()
        self.assertEqual((top.profile.display_name, top.likely), ("P01", True))
        page = self.client.get(reverse("search:job-detail", args=[job.code])).content.decode()
        self.assertIn("after 2 recorded edits: rotate, rotate", page)
        # After the search, the photo is the search's: edits and a second search are refused.
        response = self.edit(probe, operation="rotate", degrees="90")
        self.assertEqual(response.status_code, 400)
        self.assertIn("already searched", response.content.decode())
        self.assertEqual(self.search(probe, [1]).status_code, 400)
        self.assertEqual(probe.edits.count(), 2)
        self.assertRedirects(
            self.client.get(reverse("search:probe-prepare", args=[probe.code])),
            reverse("search:job-detail", args=[job.code]),
            fetch_redirect_response=False,
        )

    def test_choosing_no_face_or_a_face_that_is_not_there_is_refused(self):
        probe = self.prepare("couple.jpg")
        for faces, message in (([], "Choose at least one face"), ([3], "there is no face 3"), (["x"], "numbers")):
            with self.subTest(faces=faces):
                response = self.search(probe, faces)
                self.assertEqual(response.status_code, 400)
                self.assertIn(message, response.content.decode())
        self.assertFalse(SearchJob.objects.exists())

    def test_a_search_waits_until_the_faces_of_the_photo_as_edited_are_found(self):
        probe = probe_prepare_start(
            case=self.case, uploaded_by=self.alice, data=photo_bytes("img5.jpg"), justification=JUSTIFICATION
        )
        response = self.search(probe, [1])
        self.assertEqual(response.status_code, 400)
        self.assertIn("still being found", response.content.decode())

    def test_the_sensitive_retry_of_a_prepared_search_keeps_the_prepared_copy_and_its_edits(self):
        probe = self.prepare("img5.jpg")
        self.edit(probe, operation="adjust", brightness="0.6", contrast="1")
        self.search(probe, [1])
        job = SearchJob.objects.get(probe=probe)
        pipeline.search_job_run(job_id=job.id)
        job.refresh_from_db()
        # The retry is offered for a low-quality or no-face answer; here it is forced by the answer's state.
        job.probe.faces.update(decision="low_quality")
        retry = search_retry_sensitive(job=job, started_by=self.alice)
        self.assertNotEqual(retry.probe_id, probe.id)
        self.assertEqual(retry.probe.prepared_hash, probe.prepared_hash)
        self.assertEqual(stored_hash(retry.probe.prepared_image), probe.prepared_hash)
        self.assertEqual(
            list(retry.probe.edits.values_list("operation", "hash_after")),
            list(probe.edits.values_list("operation", "hash_after")),
        )
        self.assertEqual(retry.face_choice["mode"], "chosen")


def preparation_overlap(a, b) -> float:
    from search.photo_faces import box_overlap

    return box_overlap(a, b)


def _jpeg_size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size
