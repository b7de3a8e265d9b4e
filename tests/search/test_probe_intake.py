"""Bad input at intake: a clear message, and nothing stored (no row, no file)."""

import io

from django.test import TestCase, override_settings
from PIL import Image

from portal.services import case_close
from search.imaging import PhotoRejected
from search.models import Probe, SearchJob
from search.services import SearchRefused, probe_submit
from tests.base import AgencyFixtureMixin, image_bytes, media_files, photo_bytes


class ProbeIntakeTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()

    def assert_refused(self, data: bytes, message: str, error=PhotoRejected):
        before = media_files()
        with self.captureOnCommitCallbacks(execute=False) as callbacks:
            with self.assertRaisesMessage(error, message):
                probe_submit(case=self.case, uploaded_by=self.alice, data=data, original_name="x.jpg")
        self.assertEqual(Probe.objects.count(), 0)
        self.assertEqual(SearchJob.objects.count(), 0)
        self.assertEqual(media_files(), before)
        self.assertEqual(callbacks, [])

    def test_it_refuses_a_file_that_is_not_an_image(self):
        self.assert_refused(b"%PDF-1.7 this is a document, not a photo", "The file is not an image")

    def test_it_refuses_an_empty_file(self):
        self.assert_refused(b"", "The file is empty.")

    def test_it_refuses_a_truncated_jpeg(self):
        whole = photo_bytes("img1.jpg")
        self.assert_refused(whole[: len(whole) // 2], "truncated or damaged")

    def test_it_refuses_an_unsupported_format(self):
        self.assert_refused(image_bytes("GIF"), "Unsupported image format GIF: use JPEG, PNG or WebP.")
        self.assert_refused(image_bytes("BMP"), "Unsupported image format BMP")

    @override_settings(UPLOAD_MAX_BYTES=50_000)
    def test_it_refuses_a_file_that_is_too_large(self):
        self.assert_refused(photo_bytes("img1.jpg"), "The file is too large")

    @override_settings(UPLOAD_MAX_PIXELS=1_000_000)
    def test_it_refuses_too_many_pixels_before_decoding(self):
        self.assert_refused(image_bytes("PNG", size=(1200, 1000)), "The image has too many pixels (1200×1000")

    def test_it_treats_a_decompression_bomb_warning_as_an_error(self):
        # 40 MP fits the limit, but Pillow's bomb limit set lower must refuse, not warn.
        with override_settings(UPLOAD_MAX_PIXELS=10**9):
            previous = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = 100_000
            try:
                self.assert_refused(image_bytes("PNG", size=(400, 300)), "too many pixels")
            finally:
                Image.MAX_IMAGE_PIXELS = previous

    def test_it_refuses_a_closed_case(self):
        case_close(case=self.case)
        self.assert_refused(photo_bytes("img1.jpg"), "is closed", error=SearchRefused)

    def test_it_refuses_a_case_of_another_agency(self):
        with self.assertRaisesMessage(SearchRefused, "your own agency"):
            probe_submit(case=self.case, uploaded_by=self.charlie, data=photo_bytes("img1.jpg"))
        self.assertEqual(Probe.objects.count(), 0)

    def test_it_stores_a_clean_upright_reencode_and_queues_after_commit(self):
        source = Image.open(io.BytesIO(photo_bytes("img1.jpg")))
        rotated = io.BytesIO()
        exif = Image.Exif()
        exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
        exif[0x010F] = "CameraMaker"
        source.save(rotated, format="JPEG", exif=exif)
        with self.captureOnCommitCallbacks(execute=False) as callbacks:
            job = probe_submit(case=self.case, uploaded_by=self.alice, data=rotated.getvalue(), original_name="r.jpg")
        self.assertEqual(len(callbacks), 1)
        self.assertEqual(job.status, SearchJob.Status.QUEUED)
        probe = job.probe
        self.assertEqual((probe.width, probe.height), (source.height, source.width))
        with probe.image.open("rb") as stored:
            stored_image = Image.open(io.BytesIO(stored.read()))
            self.assertEqual(stored_image.size, (source.height, source.width))
            self.assertEqual(len(stored_image.getexif()), 0)
            self.assertNotIn("icc_profile", stored_image.info)
        self.assertEqual(len(probe.content_hash), 64)


class UploadRateLimitTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()

    @override_settings(UPLOADS_PER_MINUTE=2)
    def test_a_burst_beyond_the_limit_is_refused_and_stores_nothing(self):
        photo = image_bytes("PNG", size=(80, 80))
        with self.captureOnCommitCallbacks(execute=False):
            probe_submit(case=self.case, uploaded_by=self.alice, data=photo)
            probe_submit(case=self.case, uploaded_by=self.alice, data=photo)
            with self.assertRaisesMessage(SearchRefused, "At most 2 photos a minute"):
                probe_submit(case=self.case, uploaded_by=self.alice, data=photo)
            probe_submit(case=self.case, uploaded_by=self.bob, data=photo)  # another user is not held back
        self.assertEqual(Probe.objects.count(), 3)
