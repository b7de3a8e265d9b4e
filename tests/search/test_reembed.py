"""Re-embedding a gallery with the second engine: resumable, searchable throughout, one switch."""

import io

from django.core.management import CommandError, call_command
from django.test import TestCase, override_settings

from portal.models import AuditEntry
from search import pipeline
from search.enrolment import EnrolmentItem, gallery_enrol_batch, gallery_get_or_create
from search.models import FaceImage, Gallery
from search.reembed import gallery_reembed
from search.services import probe_submit
from tests.base import GALLERY_PROVENANCE, AgencyFixtureMixin, faces_dir, photo_bytes

SFACE = "yunet-sface-int8"


class Interrupted(Exception):
    pass


class ReembedTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        cls.gallery, _ = gallery_get_or_create(
            owner=cls.north, name="Bookings", legal_basis="Act", **GALLERY_PROVENANCE
        )
        gallery_enrol_batch(
            gallery=cls.gallery,
            gallery_created=True,
            items=[
                EnrolmentItem(path=str(faces_dir() / name), display_name=who)
                for name, who in (("img1.jpg", "P01"), ("img2.jpg", "P01"), ("img16.jpg", "P02"), ("img22.jpg", "P03"))
            ],
        )

    def search_first(self) -> tuple[str, str]:
        """Search a P01 photo not in the gallery with probes described by the second engine."""
        with override_settings(FACE_ENGINE=SFACE), self.captureOnCommitCallbacks(execute=False):
            job = probe_submit(case=self.case, uploaded_by=self.alice, data=photo_bytes("img4.jpg"))
        pipeline.search_job_run(job_id=job.id)
        first = job.candidates.get(rank=1)
        return first.profile.display_name, first.engine

    def test_the_gallery_stays_searchable_with_its_old_engine_until_the_switch(self):
        self.assertEqual(self.search_first(), ("P01", "dlib-resnet-v1"))  # another engine's gallery is found too

        calls = []

        def stop_after_two(face):
            calls.append(face)
            if len(calls) == 2:
                raise Interrupted

        with self.assertRaises(Interrupted):
            gallery_reembed(gallery=self.gallery, engine_name=SFACE, progress=stop_after_two)
        self.gallery.refresh_from_db()
        self.assertEqual(self.gallery.engine, "dlib-resnet-v1")
        self.assertEqual(FaceImage.objects.filter(gallery=self.gallery, engine=SFACE).count(), 2)
        self.assertEqual(self.search_first(), ("P01", "dlib-resnet-v1"))  # mid-way: the complete set is used

        out = io.StringIO()
        call_command("reembed", "--gallery", "Bookings", "--engine", SFACE, stdout=out, stderr=io.StringIO())
        self.assertIn("2 described now, 2 before", out.getvalue())
        self.gallery.refresh_from_db()
        self.assertEqual(self.gallery.engine, SFACE)
        self.assertEqual(self.search_first(), ("P01", SFACE))
        self.assertTrue(AuditEntry.objects.filter(action="gallery_reembedded").exists())

    def test_an_engine_that_is_not_installed_is_a_clear_error(self):
        with self.assertRaisesMessage(CommandError, "Unknown face engine 'facenet'"):
            call_command("reembed", "--gallery", "Bookings", "--engine", "facenet", stderr=io.StringIO())
        self.assertEqual(Gallery.objects.get(pk=self.gallery.pk).engine, "dlib-resnet-v1")
