"""The public request page and the privacy officer's queue, against the real database."""

from datetime import timedelta

import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TestCase, override_settings
from django.urls import reverse
from django.utils import timezone

from accounts.services import user_create
from search.enrolment import EnrolmentItem, gallery_enrol_batch, gallery_get_or_create
from search.models import SubjectRequest
from tests.base import GALLERY_PROVENANCE, PASSWORD, AgencyFixtureMixin, faces_dir, photo_bytes, sign_in


class PublicRequestPageTests(TestCase):
    def post(self, photo=("me.jpg", None), kind="erasure", contact="me@example.org"):
        name, data = photo
        return self.client.post(
            reverse("privacy:request-new"),
            {"kind": kind, "contact": contact, "photo": SimpleUploadedFile(name, data or photo_bytes("img1.jpg"))},
        )

    def test_anyone_files_a_request_without_signing_in(self):
        response = self.post()
        request = SubjectRequest.objects.get()
        self.assertContains(response, request.reference)
        self.assertContains(response, f"{request.due_at:%-d %B %Y}")

    def test_a_photo_with_two_similar_faces_is_refused_next_to_the_field(self):
        response = self.post(photo=("us.jpg", photo_bytes("couple.jpg")))
        self.assertContains(response, "Two faces of similar size", status_code=400)
        self.assertFalse(SubjectRequest.objects.exists())

    @override_settings(PUBLIC_REQUESTS_PER_MINUTE=2)
    def test_a_burst_from_one_address_is_rate_limited(self):
        self.post()
        self.post()
        self.assertContains(self.post(), "Too many requests", status_code=429)
        self.assertEqual(SubjectRequest.objects.count(), 2)


class PrivacyQueueTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        cls.privacy = user_create(username="priya", password=PASSWORD, role="privacy_officer")
        gallery, _ = gallery_get_or_create(owner=cls.south, name="South", legal_basis="Act", **GALLERY_PROVENANCE)
        gallery_enrol_batch(
            gallery=gallery,
            gallery_created=True,
            items=[EnrolmentItem(path=str(faces_dir() / "img2.jpg"), display_name="Pat")],
        )

    def file(self):
        from search.subject_requests import subject_request_file

        return subject_request_file(kind="access", data=photo_bytes("img1.jpg"), contact="pat@example.org")

    def test_agency_users_cannot_see_the_queue_or_a_request(self):
        request = self.file()
        sign_in(self.client, self.erin)
        for url in (
            reverse("privacy:request-queue"),
            reverse("privacy:request-detail", args=[request.reference]),
            reverse("privacy:request-photo", args=[request.reference]),
        ):
            self.assertEqual(self.client.get(url).status_code, 403, url)
        self.client.logout()
        self.assertEqual(self.client.get(reverse("privacy:request-queue")).status_code, 302)

    def test_overdue_requests_are_highlighted(self):
        start = timezone.now()
        with time_machine.travel(start - timedelta(days=31), tick=False):
            late = self.file()
        sign_in(self.client, self.privacy)
        page = self.client.get(reverse("privacy:request-queue"))
        self.assertContains(page, late.reference)
        self.assertContains(page, "Overdue")

    def test_the_officer_searches_then_releases_the_export(self):
        request = self.file()
        sign_in(self.client, self.privacy)
        self.client.post(reverse("privacy:request-search", args=[request.reference]))
        page = self.client.get(reverse("privacy:request-detail", args=[request.reference]))
        self.assertContains(page, "Pat")
        self.assertContains(page, "South Police")
        request.refresh_from_db()
        response = self.client.post(
            reverse("privacy:request-complete", args=[request.reference]),
            {"profile": [m["profile_id"] for m in request.matches], "identity_note": ""},
            follow=True,
        )
        self.assertContains(response, "Record how the requester")
        response = self.client.post(
            reverse("privacy:request-complete", args=[request.reference]),
            {
                "profile": [m["profile_id"] for m in request.matches],
                "identity_note": "ID card checked at the front desk",
            },
            follow=True,
        )
        self.assertContains(response, "Export of 1 profile(s) released.")
        export = self.client.get(reverse("privacy:request-export", args=[request.reference]))
        self.assertEqual(export["Content-Type"], "application/zip")


class PrivacyDecisionPageTests(AgencyFixtureMixin, TestCase):
    """P07 asks; P08 (Leo), who resembles them, is within SFace's fixed bound of their photo but not likely."""

    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        cls.privacy = user_create(username="priya", password=PASSWORD, role="privacy_officer")
        strangers = ["img1.jpg", "img13.jpg", "img16.jpg", "img38.jpg", "img18.jpg", "img20.jpg"]  # six people
        people = {"Matt": ["img29.jpg", "img30.jpg"], "Leo": ["img35.jpg", "img36.jpg"]}
        people |= {f"Stranger {n}": [name] for n, name in enumerate(strangers)}
        gallery, _ = gallery_get_or_create(owner=cls.north, name="North", legal_basis="Act", **GALLERY_PROVENANCE)
        gallery_enrol_batch(
            gallery=gallery,
            gallery_created=True,
            items=[
                EnrolmentItem(path=str(faces_dir() / name), display_name=who)
                for who, names in people.items()
                for name in names
            ],
        )

    def test_each_match_shows_its_decision_beside_the_request_photo_and_only_likely_ones_are_released(self):
        from search.subject_requests import subject_request_file

        request = subject_request_file(kind="access", data=photo_bytes("img31.jpg"), contact="matt@example.org")
        sign_in(self.client, self.privacy)
        self.client.post(reverse("privacy:request-search", args=[request.reference]))
        request.refresh_from_db()
        matches = {m["profile"]: m for m in request.matches}
        self.assertEqual(sorted(matches), ["Leo", "Matt"])
        matt, leo = matches["Matt"], matches["Leo"]
        self.assertEqual((matt["decision"], leo["decision"]), ("likely", "none"))
        self.assertLess(matt["distance"], matt["threshold"])
        self.assertGreater(leo["distance"], leo["threshold"])
        self.assertEqual(matt["threshold"], leo["threshold"])  # one threshold: the 10 SFace faces of the deployment

        page = self.client.get(reverse("privacy:request-detail", args=[request.reference]))
        photo_url = reverse("privacy:request-photo", args=[request.reference])
        self.assertContains(page, f'src="{photo_url}"', count=3)  # the request's card, and beside each match
        self.assertContains(
            page,
            f"Likely candidate (yunet-sface-int8: distance {matt['distance']:.3f} under the likely-match threshold "
            f"{matt['threshold']:.3f})",
        )
        self.assertContains(
            page,
            f"No likely candidate (yunet-sface-int8: distance {leo['distance']:.3f} over the likely-match threshold "
            f"{leo['threshold']:.3f})",
        )
        self.assertContains(page, f'name="profile" value="{matt["profile_id"]}"', count=1)
        self.assertNotContains(page, f'name="profile" value="{leo["profile_id"]}"')
        self.assertContains(page, "Not a likely match: it cannot be released.", count=1)

        # Posted anyway, Leo is refused by the service, with the decision; nothing is released.
        response = self.client.post(
            reverse("privacy:request-complete", args=[request.reference]),
            {"profile": [matt["profile_id"], leo["profile_id"]], "identity_note": "ID card checked"},
            follow=True,
        )
        self.assertContains(response, "Only likely matches can be released or erased; not Leo (North, North Police)")
        request.refresh_from_db()
        self.assertEqual((request.status, request.export.name), ("received", ""))
        response = self.client.post(
            reverse("privacy:request-complete", args=[request.reference]),
            {"profile": [matt["profile_id"]], "identity_note": "ID card checked"},
            follow=True,
        )
        self.assertContains(response, "Export of 1 profile(s) released.")
        request.refresh_from_db()
        self.assertEqual([p["profile"] for p in request.outcome["released_profiles"]], ["Matt"])
