"""The agency admin's enrolment page: provenance required for a new gallery, the quality gate and minors."""

from datetime import date

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TestCase
from django.urls import reverse

from search.enrolment import gallery_get_or_create
from search.models import FaceImage, Gallery
from tests.base import GALLERY_PROVENANCE, AgencyFixtureMixin, photo_bytes, sign_in

NEW_GALLERY = {
    "new_name": "Booking photos",
    "source_type": "booking",
    "legal_basis": "Police Act s.64",
    "legal_basis_reference": "PA 1984 s.64A",
    "responsible_person": "Records unit",
    "retention_days": 3650,
}


class GalleryPageTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()

    def enrol(self, photo="img1.jpg", **fields):
        payload = {"display_name": "Alex Example", "photos": [SimpleUploadedFile(photo, photo_bytes(photo))], **fields}
        return self.client.post(reverse("search:gallery-enrol"), payload, HTTP_ACCEPT="application/json")

    def test_the_page_lists_the_agencys_galleries_with_their_provenance(self):
        gallery_get_or_create(owner=self.north, name="North bookings", legal_basis="Act s.1", **GALLERY_PROVENANCE)
        gallery_get_or_create(owner=self.south, name="South secret", legal_basis="Act", **GALLERY_PROVENANCE)
        sign_in(self.client, self.erin)
        page = self.client.get(reverse("search:gallery-list"))
        self.assertContains(page, "North bookings")
        self.assertContains(page, "Records officer")
        self.assertNotContains(page, "South secret")

    def test_a_new_gallery_needs_its_provenance(self):
        sign_in(self.client, self.erin)
        response = self.enrol(new_name="Bookings", legal_basis="Police Act s.64")
        self.assertEqual(response.status_code, 400)
        self.assertIn(
            "needs a source type, a responsible person, a retention period", response.json()["errors"]["gallery"]
        )
        self.assertFalse(Gallery.objects.exists())

    def test_photos_are_enrolled_into_a_new_gallery_with_their_provenance(self):
        sign_in(self.client, self.erin)
        result = self.enrol(**NEW_GALLERY).json()
        self.assertEqual((result["ok"], result["results"]), (True, [{"file": "img1.jpg", "ok": True}]))
        face = FaceImage.objects.get()
        self.assertEqual(
            (face.enrolled_by, face.source_name, face.gallery.legal_basis_reference),
            (self.erin, "img1.jpg", "PA 1984 s.64A"),
        )
        again = self.enrol(gallery=face.gallery_id, photo="img1.jpg").json()
        self.assertEqual(again["results"][0]["code"], "duplicate")

    def test_a_minor_is_refused_and_leaves_no_profile_nor_new_gallery(self):
        sign_in(self.client, self.erin)
        response = self.enrol(**NEW_GALLERY, date_of_birth=date(date.today().year - 12, 1, 1).isoformat())
        self.assertEqual(response.status_code, 400)
        self.assertEqual(response.json()["results"][0]["code"], "minor")
        self.assertIn("only missing-person galleries may hold minors", response.json()["errors"]["photos"])
        self.assertFalse(Gallery.objects.exists())

    def test_only_agency_admins_enrol_and_only_into_their_own_galleries(self):
        south, _ = gallery_get_or_create(owner=self.south, name="South", legal_basis="Act", **GALLERY_PROVENANCE)
        sign_in(self.client, self.alice)
        self.assertEqual(self.client.get(reverse("search:gallery-list")).status_code, 403)
        self.assertEqual(self.enrol(**NEW_GALLERY).status_code, 403)
        sign_in(self.client, self.erin)
        response = self.enrol(gallery=south.id)
        self.assertEqual(response.status_code, 400)
        self.assertFalse(FaceImage.objects.exists())


class NistImportPageTests(AgencyFixtureMixin, TestCase):
    """The galleries page's "Import booking records (ANSI/NIST-ITL)" form, posted as its script posts it."""

    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()

    def post(self, name, data, **fields):
        payload = {"import": "nist", "nist-records": [SimpleUploadedFile(name, data)]}
        payload |= {f"nist-{key}": value for key, value in fields.items()}
        return self.client.post(reverse("search:gallery-enrol"), payload, HTTP_ACCEPT="application/json")

    def test_the_page_shows_the_import_form(self):
        sign_in(self.client, self.erin)
        page = self.client.get(reverse("search:gallery-list"))
        self.assertContains(page, "Import booking records (ANSI/NIST-ITL)")
        self.assertContains(page, 'name="nist-records"')
        self.assertContains(page, "portal/nist-import.js")

    def test_a_booking_record_is_imported_into_a_new_gallery(self):
        from tests.search.test_import_nist import nist_message

        sign_in(self.client, self.erin)
        record = nist_message(photo_bytes("img1.jpg"), photo_bytes("img2.jpg"))
        result = self.post("doe.an2", record, **NEW_GALLERY).json()
        self.assertTrue(result["ok"], result)
        self.assertEqual(result["results"], [{"file": "doe.an2", "ok": True, "skipped": []}])
        self.assertEqual((result["summary"]["profiles"], result["summary"]["faces_enrolled"]), (1, 2))
        face = FaceImage.objects.filter(profile__record_reference="SID-1001").first()
        self.assertEqual(
            (face.enrolled_by, face.gallery.name, face.profile.display_name), (self.erin, "Booking photos", "JOHN DOE")
        )
        # The same subject again, into the gallery now chosen: the same profile; the photo itself is a duplicate.
        again = self.post("doe-again.an2", nist_message(photo_bytes("img2.jpg")), gallery=face.gallery_id)
        self.assertEqual(again.status_code, 400)
        self.assertEqual(again.json()["results"][0]["skipped"][0]["code"], "duplicate")

    def test_a_broken_record_is_refused_with_its_reason_and_leaves_nothing(self):
        from tests.search.test_import_nist import nist_message

        sign_in(self.client, self.erin)
        response = self.post("cut.an2", nist_message(photo_bytes("img1.jpg"))[:-300], **NEW_GALLERY)
        self.assertEqual(response.status_code, 400)
        self.assertIn("cut.an2: The file is truncated", response.json()["errors"]["records"])
        self.assertFalse(Gallery.objects.exists())

    def test_a_nist_file_in_the_photo_form_is_pointed_to_the_import_form(self):
        from tests.search.test_import_nist import nist_message

        sign_in(self.client, self.erin)
        payload = {
            "display_name": "X",
            "photos": [SimpleUploadedFile("doe.nist", nist_message(photo_bytes("img1.jpg")))],
        }
        response = self.client.post(reverse("search:gallery-enrol"), payload | NEW_GALLERY)
        self.assertEqual(response.status_code, 400)
        self.assertIn("Import booking records", response.json()["errors"]["photos"])

    def test_only_agency_admins_import_and_only_into_their_own_galleries(self):
        from tests.search.test_import_nist import nist_message

        south, _ = gallery_get_or_create(owner=self.south, name="South", legal_basis="Act", **GALLERY_PROVENANCE)
        record = nist_message(photo_bytes("img1.jpg"))
        sign_in(self.client, self.alice)
        self.assertEqual(self.post("a.an2", record, gallery=south.id).status_code, 403)
        sign_in(self.client, self.erin)
        response = self.post("a.an2", record, gallery=south.id)
        self.assertEqual(response.status_code, 400)
        self.assertIn("gallery", response.json()["errors"])
        self.assertFalse(FaceImage.objects.exists())
