"""Findings 4 and 5 of the security review, reproduced: refused photos on the public request page escaped
its limit, and one officer could overwrite another's lead proposal."""

from unittest import mock

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TestCase, override_settings
from django.urls import reverse

from accounts.models import Role
from accounts.services import user_create
from portal.models import AuditEntry
from search import pipeline
from search.enrolment import EnrolmentItem, gallery_enrol_batch, gallery_get_or_create
from search.imaging import decode_photo
from search.leads import ReviewRefused, candidate_mark
from search.models import LeadReview, SubjectRequest
from search.services import probe_submit
from tests.base import GALLERY_PROVENANCE, PASSWORD, AgencyFixtureMixin, faces_dir, image_bytes, photo_bytes, sign_in
from tests.factories import comparison_entry


class PublicRequestLimitTests(TestCase):
    def post(self, data: bytes, ip="198.51.100.4", contact="me@example.org"):
        return self.client.post(
            reverse("privacy:request-new"),
            {"kind": "access", "contact": contact, "photo": SimpleUploadedFile("me.jpg", data)},
            REMOTE_ADDR=ip,
        )

    @override_settings(PUBLIC_REQUESTS_PER_MINUTE=3)
    def test_refused_photos_count_toward_the_limit_and_stop_being_decoded(self):
        with mock.patch("search.subject_requests.decode_photo", wraps=decode_photo) as decode:
            # A photo with no face: refused after a decode and a face detection, but counted all the same.
            for _ in range(3):
                self.assertEqual(self.post(image_bytes("JPEG", size=(320, 240))).status_code, 400)
            self.assertEqual(decode.call_count, 3)
            limited = self.post(image_bytes("JPEG", size=(320, 240)))
            self.assertContains(limited, "Too many requests", status_code=429)
            self.assertEqual(decode.call_count, 3)  # refused before the photo is read
            # Another address is not held back by this one.
            self.assertEqual(self.post(photo_bytes("img1.jpg"), ip="203.0.113.7").status_code, 200)
        self.assertEqual(SubjectRequest.objects.count(), 1)

    @override_settings(PUBLIC_REQUESTS_PER_MINUTE_TOTAL=4)
    def test_all_addresses_together_are_bounded_too(self):
        for number in range(4):
            self.post(b"not a photo", ip=f"198.51.100.{number + 10}")
        self.assertEqual(self.post(b"not a photo", ip="198.51.100.99").status_code, 429)

    def test_cheap_checks_come_before_the_decode(self):
        with mock.patch("search.subject_requests.decode_photo") as decode:
            response = self.post(photo_bytes("img1.jpg"), contact="not an address")
        self.assertEqual(response.status_code, 400)
        decode.assert_not_called()
        self.assertEqual(AuditEntry.objects.filter(action="subject_request_attempted").count(), 1)


class ProposalOwnershipTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        cls.olga = user_create(username="olga", password=PASSWORD, role=Role.OFFICER, agency=cls.north)
        gallery, _ = gallery_get_or_create(
            owner=cls.north, name="North bookings", legal_basis="Test act", **GALLERY_PROVENANCE
        )
        gallery_enrol_batch(
            gallery=gallery,
            gallery_created=True,
            items=[EnrolmentItem(path=str(faces_dir() / "img1.jpg"), display_name="P01")],
        )
        job = probe_submit(case=cls.case, uploaded_by=cls.alice, data=photo_bytes("img2.jpg"))
        pipeline.search_job_run(job_id=job.id)
        cls.candidate = job.candidates.get(rank=1)

    def test_another_officer_cannot_overwrite_a_proposal(self):
        candidate_mark(
            user=self.alice,
            candidate=self.candidate,
            decision="possible_lead",
            comparison_entry=comparison_entry(notes="same scar"),
        )
        with self.assertRaisesMessage(ReviewRefused, "alice already marked this candidate"):
            candidate_mark(
                user=self.olga,
                candidate=self.candidate,
                decision="excluded",
                comparison_entry=comparison_entry("excluded", notes="no"),
            )
        review = LeadReview.objects.get(candidate=self.candidate)
        self.assertEqual(
            (review.proposed_by, review.status, review.proposal_note),
            (self.alice, LeadReview.Status.POSSIBLE_LEAD, "same scar"),
        )
        # The author may still change their own mind.
        candidate_mark(
            user=self.alice,
            candidate=self.candidate,
            decision="excluded",
            comparison_entry=comparison_entry("inconclusive", notes="second look"),
        )
        self.assertEqual(LeadReview.objects.get(candidate=self.candidate).status, LeadReview.Status.EXCLUDED)

    def test_the_page_offers_no_mark_to_another_officer_and_refuses_a_forged_post(self):
        candidate_mark(
            user=self.alice, candidate=self.candidate, decision="possible_lead", comparison_entry=comparison_entry()
        )
        sign_in(self.client, self.olga)
        args = [self.candidate.job.code, self.candidate.probe_face.index, self.candidate.rank]
        page = self.client.get(reverse("search:candidate-compare", args=args)).content.decode()
        self.assertNotIn(reverse("search:candidate-mark", args=args), page)
        response = self.client.post(reverse("search:candidate-mark", args=args), {"decision": "excluded"}, follow=True)
        self.assertContains(response, "already marked this candidate")
        self.assertEqual(LeadReview.objects.get(candidate=self.candidate).proposed_by, self.alice)
