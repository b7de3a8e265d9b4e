"""Data-subject access and erasure: filed by the person, worked by a privacy officer; erasure is complete,
leaves an "erased" marker in past results and a tombstone that refuses the same face later."""

import io
import json
import zipfile

from django.core.management import CommandError, call_command
from django.test import TestCase
from django.urls import reverse

from accounts.services import user_create
from portal.models import AuditEntry
from search import pipeline
from search.enrolment import (
    EnrolmentItem,
    EnrolmentSkipped,
    face_image_enrol,
    gallery_enrol_batch,
    gallery_get_or_create,
    profile_get_or_create,
)
from search.leads import candidate_mark, lead_decide, lead_verify
from search.models import FaceDescriptor, FaceImage, Profile, SubjectRequest, Tombstone
from search.selectors import search_job_result
from search.services import probe_submit
from search.subject_requests import RequestRefused, subject_request_file
from tests.base import (
    GALLERY_PROVENANCE,
    PASSWORD,
    AgencyFixtureMixin,
    faces_dir,
    identities,
    media_files,
    photo_bytes,
    sign_in,
)
from tests.factories import comparison_entry

PERSON = "P02"  # several photos: some enrolled in two agencies' galleries, one kept to file the request with


def run(*args) -> dict:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return json.loads(out.getvalue())


class SubjectRequestTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        cls.privacy = user_create(username="priya", password=PASSWORD, role="privacy_officer")
        photos = sorted(name for name, who in identities().items() if who == PERSON)
        cls.request_photo, cls.later_photo, enrolled = photos[0], photos[1], photos[2:]
        north, _ = gallery_get_or_create(
            owner=cls.north, name="North bookings", legal_basis="Act", **GALLERY_PROVENANCE
        )
        south, _ = gallery_get_or_create(owner=cls.south, name="South wanted", legal_basis="Act", **GALLERY_PROVENANCE)
        gallery_enrol_batch(
            gallery=north,
            gallery_created=True,
            items=[EnrolmentItem(path=str(faces_dir() / name), display_name="Pat Person") for name in enrolled[:2]]
            + [EnrolmentItem(path=str(faces_dir() / "img1.jpg"), display_name="Someone Else")],
        )
        gallery_enrol_batch(
            gallery=south,
            gallery_created=True,
            items=[EnrolmentItem(path=str(faces_dir() / name), display_name="P. Person") for name in enrolled[2:3]],
        )
        cls.north_gallery = north

    def file(self, kind: str) -> dict:
        return run(
            "subject_request", kind, str(faces_dir() / self.request_photo), "--contact", "pat@example.org", "--json"
        )

    def test_filing_gives_a_reference_and_a_due_date_thirty_days_later(self):
        result = self.file("access")
        request = SubjectRequest.objects.get(reference=result["reference"])
        self.assertEqual(result["due"], request.due_at.date().isoformat())
        self.assertEqual((request.due_at - request.created_at).days, 30)
        self.assertTrue(AuditEntry.objects.filter(action="subject_request_filed").exists())
        self.file("access")  # no limit on how often a person asks
        self.assertEqual(SubjectRequest.objects.count(), 2)

    def test_a_photo_without_one_clear_face_is_refused(self):
        with self.assertRaisesMessage(CommandError, "Two faces of similar size"):
            run("subject_request", "erasure", str(faces_dir() / "couple.jpg"), "--contact", "x@example.org")
        from tests.base import image_bytes

        with self.assertRaisesMessage(RequestRefused, "No face found"):
            subject_request_file(kind="access", data=image_bytes("PNG", size=(200, 200)), contact="x@example.org")
        self.assertEqual(SubjectRequest.objects.count(), 0)

    def test_access_exports_every_matching_profile_of_every_agency_with_its_provenance(self):
        reference = self.file("access")["reference"]
        result = run("process_request", reference, "--user", "priya", "--approve-all", "--json")
        self.assertEqual(sorted(m["profile"] for m in result["matches"]), ["P. Person", "Pat Person"])
        self.assertEqual([m["decision"] for m in result["matches"]], ["likely", "likely"])
        self.assertTrue(all(m["distance"] <= m["threshold"] for m in result["matches"]))
        self.assertEqual(result["not_approved"], [])
        with zipfile.ZipFile(result["export"]) as archive:
            data = json.loads(archive.read("profiles.json"))
            images = [n for n in archive.namelist() if n.startswith("images/")]
        self.assertEqual(sorted(p["agency"] for p in data["profiles"]), ["North Police", "South Police"])
        self.assertEqual(data["profiles"][0]["legal_basis"], "Act")
        self.assertEqual(len(images), 3)
        request = SubjectRequest.objects.get(reference=reference)
        self.assertEqual((request.status, request.identity_verified_by), ("completed", self.privacy))
        self.assertTrue(AuditEntry.objects.filter(action="subject_search", actor=self.privacy).exists())

    def test_only_a_privacy_officer_works_requests(self):
        reference = self.file("erasure")["reference"]
        with self.assertRaisesMessage(CommandError, "Only a privacy officer"):
            run("process_request", reference, "--user", "bob", "--approve-all", "--json")
        self.assertEqual(FaceImage.objects.count(), 4)

    def test_erasure_removes_everything_marks_past_results_and_refuses_the_face_later(self):
        with self.captureOnCommitCallbacks(execute=False):
            job = probe_submit(case=self.case, uploaded_by=self.alice, data=photo_bytes(self.later_photo))
        pipeline.search_job_run(job_id=job.id)
        first = job.candidates.get(rank=1)
        self.assertEqual(first.profile.display_name, "Pat Person")
        candidate_mark(user=self.alice, candidate=first, decision="possible_lead", comparison_entry=comparison_entry())
        lead_verify(user=self.bob, candidate=first, comparison_entry=comparison_entry())
        lead_decide(user=self.bob, candidate=first, confirm=True)
        theirs = list(FaceImage.objects.filter(profile__display_name__in=["Pat Person", "P. Person"]))
        their_files = [name for f in theirs for name in (f.image.name, f.crop.name)]
        self.assertEqual(FaceDescriptor.objects.filter(face_image__in=theirs).count(), len(theirs))

        reference = self.file("erasure")["reference"]
        with self.captureOnCommitCallbacks(execute=True):
            result = run("process_request", reference, "--user", "priya", "--approve-all", "--json")
        self.assertEqual(sorted(p["profile"] for p in result["erased_profiles"]), ["P. Person", "Pat Person"])
        self.assertEqual(result["files_removed"], len(their_files))
        # Nothing of theirs remains: rows, descriptors, files (the request's own photo included).
        self.assertFalse(Profile.objects.filter(display_name__in=["Pat Person", "P. Person"]).exists())
        self.assertEqual(FaceImage.objects.count(), 1)
        self.assertFalse(FaceDescriptor.objects.filter(face_image_id__in=[f.id for f in theirs]).exists())
        self.assertEqual(FaceDescriptor.objects.count(), 1)
        self.assertFalse(set(their_files) & set(media_files()))
        self.assertFalse([n for n in media_files() if n.startswith(f"subject-requests/{reference}")])
        # Past results keep an "erased" marker; the confirmed lead stays as an erased subject.
        first.refresh_from_db()
        self.assertIsNotNone(first.erased_at)
        self.assertIsNone(first.profile_id)
        job.refresh_from_db()
        self.assertEqual(search_job_result(job=job)["faces"][0]["candidates"][0]["profile"], "(erased)")
        self.assertEqual(first.review.status, "confirmed")
        # The searching agency's own audit says that a candidate of its search was erased, and when — never who.
        entries = AuditEntry.objects.filter(action=AuditEntry.Action.CANDIDATE_ERASED, target_id=str(job.id))
        self.assertTrue(entries.exists())
        for entry in entries:
            self.assertEqual((entry.agency_id, entry.case_id), (self.north.id, self.case.id))
            self.assertRegex(
                entry.detail, r"^\d+ candidates? of this search (was|were) erased at the person's request on "
            )
            self.assertNotIn("Person", entry.detail + str(entry.data))
        sign_in(self.client, self.bob)
        audit_page = self.client.get(reverse("portal:audit-log")).content.decode()
        self.assertIn("A candidate of a search was erased", audit_page)
        # A later search with another photo of them finds none of their profiles.
        with self.captureOnCommitCallbacks(execute=False):
            again = probe_submit(case=self.case, uploaded_by=self.alice, data=photo_bytes(self.later_photo))
        pipeline.search_job_run(job_id=again.id)
        self.assertEqual(list(again.candidates.values_list("profile__display_name", flat=True)), ["Someone Else"])
        # The tombstone refuses the same face at a later enrolment, and tells the privacy officer.
        # One per erased face and installed engine: the gallery's own, and one described from the stored photo.
        self.assertEqual(Tombstone.objects.filter(engine="yunet-sface-int8").count(), 3)
        self.assertEqual(Tombstone.objects.filter(engine="dlib-resnet-v1").count(), 3)
        profile = profile_get_or_create(gallery=self.north_gallery, display_name="Re-enrolled")
        with self.assertRaises(EnrolmentSkipped) as refused:
            face_image_enrol(profile=profile, data=photo_bytes(self.later_photo), source_name="again.jpg")
        self.assertEqual(refused.exception.code, "tombstone")
        self.assertIn("tombstone; yunet-sface-int8: distance", str(refused.exception))
        self.assertTrue(AuditEntry.objects.filter(action="tombstone_hit").exists())
