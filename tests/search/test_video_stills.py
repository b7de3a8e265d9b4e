"""Stills from recorded video: the upload's checks, the stills a worker proposes from real short videos (made
here at test time from the shared photos, never committed), searching a chosen still, bad input (a clear
message and nothing stored), other agencies, and the memory cap of the decoding child."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from unittest import mock

import cv2
import numpy as np
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import SimpleTestCase, TestCase, override_settings
from django.urls import reverse
from PIL import Image

from portal.models import AuditEntry
from portal.services import case_close
from search import pipeline
from search import video as videos
from search.models import Probe, ProbeVideo, SearchJob
from search.video_views import still_time
from tests.base import AgencyFixtureMixin, faces_dir, media_files, photo_bytes, sign_in
from tests.factories import case_make, gallery_make

JUSTIFICATION = "CCTV recording of the robbery at the station"
FRAME_SIZE = (640, 480)


def make_video(
    path: Path,
    *,
    seconds: float,
    fps: int = 10,
    sharp: tuple[float, float] = (0, 0),
    blank: tuple[float, float] = (0, 0),
    fourcc: str = "mp4v",
    face: str = "img5.jpg",
) -> Path:
    """A video of a person (a shared photo, moving a little) blurred except while `sharp`, and an empty grey
    frame while `blank` (both [start, end) in seconds)."""
    width, height = FRAME_SIZE
    photo = cv2.cvtColor(np.asarray(Image.open(faces_dir() / face).convert("RGB")), cv2.COLOR_RGB2BGR)
    photo = photo[:height, : width - 100]
    blurred = cv2.GaussianBlur(photo, (0, 0), 4)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, FRAME_SIZE)
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} here"
    for index in range(round(seconds * fps)):
        at = index / fps
        frame = np.full((height, width, 3), 96, np.uint8)
        if not blank[0] <= at < blank[1]:
            image = photo if sharp[0] <= at < sharp[1] else blurred
            left = 40 + (index % 10) * 6
            frame[: image.shape[0], left : left + image.shape[1]] = image
        writer.write(frame)
    writer.release()
    return path


class VideoFolder:
    """A temporary folder of generated videos for a test class."""

    @classmethod
    def make_folder(cls) -> Path:
        folder = Path(tempfile.mkdtemp(prefix="test-videos-"))
        cls.addClassCleanup(shutil.rmtree, folder, ignore_errors=True)
        return folder


def upload_file(path: Path, name: str | None = None, content_type: str = "video/mp4") -> SimpleUploadedFile:
    return SimpleUploadedFile(name or path.name, path.read_bytes(), content_type=content_type)


def video_files(video: ProbeVideo) -> list[str]:
    return [name for name in media_files() if name.startswith(f"videos/{video.agency.code}/{video.code}/")]


class VideoTestCase(AgencyFixtureMixin, VideoFolder, TestCase):
    @classmethod
    def upload(cls, client, upload, case=None, **fields):
        data = {
            "video-file": upload,
            "video-purpose": "Robbery",
            "video-justification": JUSTIFICATION,
        } | fields
        with cls.captureOnCommitCallbacks(execute=False):
            return client.post(reverse("search:video-upload", args=[(case or cls.case).code]), data)

    @classmethod
    def upload_and_read(cls, client, path: Path, **fields) -> ProbeVideo:
        """Upload through the page, then run the worker's task here (its child process is real)."""
        response = cls.upload(client, upload_file(path), **fields)
        assert response.status_code == 302, response.content.decode()[:2000]
        video = ProbeVideo.objects.latest("created_at")
        with cls.captureOnCommitCallbacks(execute=True):  # a failed video's files go after its commit
            videos.video_stills_find(video_id=video.id)
        video.refresh_from_db()
        return video


class VideoContainerTests(SimpleTestCase):
    def test_an_mp4_is_named_by_its_ftyp_box(self):
        self.assertEqual(videos.video_container(b"\x00\x00\x00\x1cftypisom\x00\x00\x02\x00isomiso2"), "mp4")

    def test_a_webm_is_named_by_the_doctype_of_its_ebml_header(self):
        head = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82\x84webm"
        self.assertEqual(videos.video_container(head + b"\x42\x87\x81\x02"), "webm")

    def test_anything_else_is_not_a_video_and_the_message_names_what_is_accepted(self):
        matroska = b"\x1a\x45\xdf\xa3\x93\x42\x82\x88matroska\x42\x87\x81\x04\x42\x85\x81\x02"
        cases = {
            photo_bytes("img1.jpg")[:64]: "The file is a JPEG photo, not a video.",
            b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic": "HEIC or AVIF photo",
            matroska: "Matroska (MKV) files are not accepted.",
            b"\x1a\x45\xdf\xa3\xff": "Matroska (MKV) files are not accepted.",
            b"RIFF\x00\x00\x00\x00AVI LIST": "an AVI video, which is not accepted",
            os.urandom(64): "The file is not a video",
            b"": "The file is not a video",
        }
        for head, message in cases.items():
            with self.subTest(message=message), self.assertRaisesMessage(videos.VideoRejected, message) as raised:
                videos.video_container(head)
            self.assertIn("Choose an MP4 or WebM video.", str(raised.exception))

    @override_settings(VIDEO_MAX_BYTES=1000)
    def test_the_size_is_checked_on_its_own(self):
        with self.assertRaisesMessage(videos.VideoRejected, "The video is too large (0.0 MB); the limit is"):
            videos.video_size_check(1001)
        with self.assertRaisesMessage(videos.VideoRejected, "The file is empty."):
            videos.video_size_check(0)
        videos.video_size_check(1000)

    def test_the_child_reads_inside_the_running_tasks_soft_time_limit(self):
        from celery import shared_task

        @shared_task(name="tests.video_timeout_probe", soft_time_limit=300)
        def timeout_probe():
            return videos.decode_timeout_seconds()

        self.assertEqual(timeout_probe.apply().get(), 285)
        with override_settings(CELERY_TASK_SOFT_TIME_LIMIT=110):
            self.assertEqual(videos.decode_timeout_seconds(), 95)  # called outside a task: the worker's limit

    def test_times_and_durations_read_as_a_person_says_them(self):
        self.assertEqual(still_time(83_450), "01:23.450")
        self.assertEqual(still_time(0), "00:00.000")
        self.assertEqual(still_time(3_723_004), "62:03.004")
        self.assertEqual(videos.duration_words(1000), "1 second")
        self.assertEqual(videos.duration_words(3500), "3.5 seconds")
        self.assertEqual(videos.duration_words(252_000), "4 min 12 s")
        self.assertEqual(videos.duration_words(300_000), "5 minutes")


class VideoStillsTests(VideoTestCase):
    """One 8-second video, read once: a person blurred except 3.0–3.6 s, nobody 5.0–6.5 s."""

    SHARP = (3.0, 3.6)
    BLANK = (5.0, 6.5)

    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        photos = {"P01": ["img1.jpg", "img2.jpg"], "P02": ["img16.jpg"], "P03": ["img20.jpg"]}
        gallery_make(
            owner=cls.north, people={who: [faces_dir() / name for name in names] for who, names in photos.items()}
        )
        cls.path = make_video(cls.make_folder() / "clip.mp4", seconds=8, sharp=cls.SHARP, blank=cls.BLANK)
        from django.test import Client

        client = Client()
        sign_in(client, cls.alice)
        cls.video = cls.upload_and_read(client, cls.path)

    def setUp(self):
        sign_in(self.client, self.alice)

    def test_the_upload_stores_the_file_with_its_hash_and_audits_it(self):
        video = self.video
        self.assertEqual((video.container, video.original_name), ("mp4", "clip.mp4"))
        self.assertEqual(video.content_hash, hashlib.sha256(self.path.read_bytes()).hexdigest())
        self.assertEqual(video.size_bytes, self.path.stat().st_size)
        self.assertEqual(video.file.name, f"videos/{self.north.code}/{video.code}/source.mp4")
        with default_storage.open(video.file.name, "rb") as stored:
            self.assertEqual(stored.read(), self.path.read_bytes())
        uploaded = AuditEntry.objects.get(action=AuditEntry.Action.VIDEO_UPLOADED, target_id=str(video.pk))
        self.assertEqual(
            (uploaded.case, uploaded.actor, uploaded.data["video_hash"], uploaded.data["purpose"]),
            (self.case, self.alice, video.content_hash, "Robbery"),
        )
        self.assertEqual(uploaded.data["justification"], JUSTIFICATION)

    def test_the_sharpest_proposed_still_is_the_frame_made_sharp(self):
        video = self.video
        self.assertEqual((video.status, video.error), (ProbeVideo.Status.READY, ""))
        self.assertEqual((video.duration_ms, video.width, video.height), (8000, 640, 480))
        best, *others = video.stills
        self.assertTrue(3000 <= best["time_ms"] < 3600, best)
        # Blurred with a sigma of 4 px the other frames are far less sharp.
        self.assertGreater(best["sharpness"], 5 * max(still["sharpness"] for still in others))
        self.assertEqual(best["faces"], 1)

    def test_frames_without_a_face_are_never_proposed_and_stills_are_a_second_apart(self):
        times = [still["time_ms"] for still in self.video.stills]
        self.assertTrue(times and len(times) <= 8)
        self.assertFalse([t for t in times if 5000 <= t < 6500], times)
        for number, first in enumerate(times):
            for second in times[number + 1 :]:
                self.assertGreaterEqual(abs(first - second), videos.STILL_SPACING_MS)
        # Samples at 0, 0.5, 1, … 7.5 s; faces in 13 of them; a second apart that leaves at most six.
        self.assertGreaterEqual(len(times), 5)

    def test_each_still_is_stored_as_a_jpeg_and_the_finding_is_audited(self):
        for still in self.video.stills:
            self.assertEqual(still["image"], f"videos/{self.north.code}/{self.video.code}/still-{still['time_ms']}.jpg")
            with default_storage.open(still["image"], "rb") as stored:
                image = Image.open(stored)
                self.assertEqual((image.format, image.size), ("JPEG", (640, 480)))
        found = AuditEntry.objects.get(action=AuditEntry.Action.VIDEO_STILLS_FOUND, target_id=str(self.video.pk))
        self.assertEqual(found.data["stills_ms"], [still["time_ms"] for still in self.video.stills])
        self.assertEqual(found.data["video_hash"], self.video.content_hash)

    def test_running_the_task_again_changes_nothing(self):
        before = (list(self.video.stills), AuditEntry.objects.count())
        videos.video_stills_find(video_id=self.video.id)
        self.video.refresh_from_db()
        self.assertEqual((self.video.stills, AuditEntry.objects.count()), before)

    def test_the_pick_page_shows_each_still_with_its_time_faces_and_sharpness_the_best_ticked(self):
        response = self.client.get(reverse("search:video-detail", args=[self.video.code]))
        self.assertEqual(response.status_code, 200)
        html = response.content.decode()
        boxes = re.findall(r'<input type="checkbox" name="still" value="(\d+)"[^>]*>', html)
        self.assertEqual(boxes, [str(n) for n in range(1, len(self.video.stills) + 1)])
        self.assertEqual(html.count(" checked>"), 1)
        self.assertIn('value="1" id="still-1" checked>', html)
        best = self.video.stills[0]
        self.assertIn(f'<span class="still-time">{still_time(best["time_ms"])}</span>', html)
        self.assertIn(f"1 face · sharpness {round(best['sharpness'])} · sharpest", html)
        self.assertIn(self.video.content_hash, html)
        # Looking at the stills is audited, like looking at results.
        viewed = AuditEntry.objects.get(action=AuditEntry.Action.VIDEO_VIEWED)
        self.assertEqual((viewed.target_id, viewed.case_id), (str(self.video.id), self.video.case_id))
        self.assertIn("Search the chosen stills", html)
        image = self.client.get(reverse("search:video-still-image", args=[self.video.code, 1]))
        self.assertEqual((image.status_code, image["Content-Type"]), (200, "image/jpeg"))
        self.assertEqual(image["Cache-Control"], "private, no-store")
        missing = self.client.get(reverse("search:video-still-image", args=[self.video.code, 99]))
        self.assertEqual(missing.status_code, 404)

    def test_the_status_says_when_the_stills_are_ready(self):
        status = self.client.get(reverse("search:video-status", args=[self.video.code])).json()
        self.assertEqual(
            status,
            {
                "status": "ready",
                "status_label": "Stills ready",
                "finished": True,
                "error": None,
                "stills": len(self.video.stills),
            },
        )

    def test_the_case_page_lists_the_video_with_a_link_to_its_stills(self):
        html = self.client.get(reverse("portal:case-detail", args=[self.case.code])).content.decode()
        self.assertIn("Stills from a recorded video", html)
        self.assertIn('accept="video/mp4,video/webm"', html)
        self.assertIn(f'href="{reverse("search:video-detail", args=[self.video.code])}">clip.mp4</a>', html)
        self.assertIn(f"{len(self.video.stills)} stills to choose from", html)
        other = case_make(created_by=self.alice, number="N-002", title="Another case")
        html = self.client.get(reverse("portal:case-detail", args=[other.code])).content.decode()
        self.assertNotIn("clip.mp4", html)

    def search(self, *numbers):
        with self.captureOnCommitCallbacks(execute=False):
            return self.client.post(
                reverse("search:video-search", args=[self.video.code]), {"still": [str(n) for n in numbers]}
            )

    def test_a_searched_still_finds_p01_as_a_likely_candidate_and_carries_the_video_hash_and_time(self):
        response = self.search(1)
        job = SearchJob.objects.get()
        self.assertRedirects(response, reverse("search:job-detail", args=[job.code]), fetch_redirect_response=False)
        best = self.video.stills[0]
        probe = job.probe
        self.assertEqual(
            (probe.video, probe.video_hash, probe.frame_time_ms, probe.case),
            (self.video, self.video.content_hash, best["time_ms"], self.case),
        )
        self.assertEqual(probe.original_name, f"clip.mp4 at {still_time(best['time_ms'])}")
        self.assertEqual(
            (job.offense_category.name, job.justification, job.face_choice, job.sensitive),
            ("Robbery", JUSTIFICATION, {"mode": "usable"}, False),
        )
        started = AuditEntry.objects.get(action=AuditEntry.Action.SEARCH_STARTED, target_id=str(job.pk))
        self.assertEqual(
            (started.data["video_hash"], started.data["frame_ms"]), (self.video.content_hash, best["time_ms"])
        )
        pipeline.search_job_run(job_id=job.id)
        job.refresh_from_db()
        self.assertEqual(job.status, SearchJob.Status.DONE)
        top = job.candidates.order_by("rank").first()
        self.assertEqual((top.profile.display_name, top.likely), ("P01", True))
        page = self.client.get(reverse("search:job-detail", args=[job.code])).content.decode()
        self.assertIn(f"Search of clip.mp4 at {still_time(best['time_ms'])}", page)
        self.assertIn(f"of the video clip.mp4 (SHA-256 {self.video.content_hash[:16]}", page)

    def test_several_chosen_stills_become_several_searches_and_the_case_page_follows(self):
        response = self.search(1, 2, 2, 99, 0)
        self.assertRedirects(
            response, reverse("portal:case-detail", args=[self.case.code]), fetch_redirect_response=False
        )
        times = sorted(Probe.objects.values_list("frame_time_ms", flat=True))
        self.assertEqual(times, sorted(still["time_ms"] for still in self.video.stills[:2]))

    def test_choosing_no_still_searches_nothing(self):
        response = self.search()
        self.assertRedirects(response, reverse("search:video-detail", args=[self.video.code]))
        self.assertEqual(SearchJob.objects.count(), 0)
        messages = [str(m) for m in response.wsgi_request._messages]
        self.assertEqual(messages, ["Not searched — choose at least one still."])

    def test_a_closed_case_is_not_searched(self):
        case_close(case=self.case, actor=self.alice)
        response = self.search(1)
        self.assertRedirects(response, reverse("search:video-detail", args=[self.video.code]))
        self.assertEqual(SearchJob.objects.count(), 0)
        self.assertIn("is closed; reopen it to search", " ".join(str(m) for m in response.wsgi_request._messages))

    def test_another_agency_gets_404_on_every_video_url(self):
        sign_in(self.client, self.charlie)
        code = self.video.code
        for method, url in (
            ("get", reverse("search:video-detail", args=[code])),
            ("get", reverse("search:video-status", args=[code])),
            ("get", reverse("search:video-still-image", args=[code, 1])),
            ("post", reverse("search:video-search", args=[code])),
        ):
            with self.subTest(url=url):
                self.assertEqual(getattr(self.client, method)(url, {"still": ["1"]}).status_code, 404)
        response = self.upload(self.client, upload_file(self.path))
        self.assertEqual(response.status_code, 404)
        self.assertEqual(ProbeVideo.objects.count(), 1)
        self.assertEqual(SearchJob.objects.count(), 0)

    def test_signed_out_nobody_reaches_a_video(self):
        self.client.logout()
        response = self.client.get(reverse("search:video-still-image", args=[self.video.code, 1]))
        self.assertEqual(response.status_code, 302)


class VideoBadInputTests(VideoTestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        cls.folder = cls.make_folder()

    def setUp(self):
        sign_in(self.client, self.alice)

    def assert_refused_at_upload(self, upload, message: str, **fields):
        before = media_files()
        response = self.upload(self.client, upload, **fields)
        self.assertEqual(response.status_code, 400)
        html = response.content.decode()
        self.assertIn(message, html)
        self.assertIn("Nothing was stored.", html)
        self.assertEqual(ProbeVideo.objects.count(), 0)
        self.assertEqual(media_files(), before)
        self.assertFalse(AuditEntry.objects.filter(action=AuditEntry.Action.VIDEO_UPLOADED).exists())
        return html

    def assert_rejected_by_the_worker(self, video: ProbeVideo, message: str):
        self.assertEqual(video.status, ProbeVideo.Status.FAILED)
        self.assertEqual(video.error, message)
        self.assertEqual((video.file.name, video.stills, video.duration_ms), ("", [], None))
        self.assertEqual(video_files(video), [])
        self.assertTrue(video.content_hash and video.size_bytes)
        rejected = AuditEntry.objects.get(action=AuditEntry.Action.VIDEO_REJECTED, target_id=str(video.pk))
        self.assertEqual(rejected.detail, message[:300])
        page = self.client.get(reverse("search:video-detail", args=[video.code])).content.decode()
        self.assertIn("This video cannot be used", page)
        self.assertIn(message, page)
        self.assertNotIn("<img", page.split("<main")[1])

    def test_a_jpeg_renamed_mp4_is_not_a_video(self):
        upload = SimpleUploadedFile("photo.mp4", photo_bytes("img5.jpg"), content_type="video/mp4")
        self.assert_refused_at_upload(upload, "The file is a JPEG photo, not a video. Choose an MP4 or WebM video.")

    def test_random_bytes_are_not_a_video(self):
        upload = SimpleUploadedFile("noise.webm", os.urandom(50_000), content_type="video/webm")
        self.assert_refused_at_upload(upload, "The file is not a video (or not one this portal can read).")

    def test_a_video_past_the_size_limit_is_skipped_unread(self):
        path = make_video(self.folder / "big.mp4", seconds=2)
        with override_settings(VIDEO_MAX_BYTES=path.stat().st_size - 1):
            self.assert_refused_at_upload(upload_file(path), "The video is larger than the limit of")

    def test_the_purpose_and_justification_are_checked_as_for_photos(self):
        path = make_video(self.folder / "short.mp4", seconds=1)
        html = self.assert_refused_at_upload(
            upload_file(path), "Justify the search in at least 20 characters", **{"video-justification": "because"}
        )
        self.assertIn("because", html)  # kept for the second try
        self.assert_refused_at_upload(upload_file(path), "Select a valid choice", **{"video-purpose": "Curiosity"})

    def test_a_closed_case_takes_no_video(self):
        case_close(case=self.case, actor=self.alice)
        path = make_video(self.folder / "closed.mp4", seconds=1)
        before = media_files()
        response = self.upload(self.client, upload_file(path))
        self.assertRedirects(response, reverse("portal:case-detail", args=[self.case.code]))
        self.assertEqual((ProbeVideo.objects.count(), media_files()), (0, before))
        messages = [str(m) for m in response.wsgi_request._messages]
        self.assertEqual(messages, ["Not uploaded — case N-001 is closed; reopen it to search."])
        with self.assertRaisesMessage(videos.VideoRejected, "Case N-001 is closed; reopen it to search."):
            videos.video_upload(
                case=self.case, uploaded_by=self.alice, upload=upload_file(path), category=None, justification=""
            )

    def test_a_video_too_long_is_refused_by_the_worker_and_deleted(self):
        path = make_video(self.folder / "long.mp4", seconds=3)
        with override_settings(VIDEO_MAX_SECONDS=1):
            video = self.upload_and_read(self.client, path)
        self.assert_rejected_by_the_worker(
            video,
            "The video lasts 3 seconds; at most 1 second can be read. Cut the part that matters and upload that.",
        )

    def test_a_video_without_a_face_keeps_only_the_reason_the_hash_and_the_size(self):
        path = make_video(self.folder / "empty.webm", seconds=3, blank=(0, 3), fourcc="VP80")
        video = self.upload_and_read(self.client, path, **{"video-sensitive": "on"})
        self.assertEqual((video.container, video.sensitive), ("webm", True))
        self.assert_rejected_by_the_worker(video, "No face found in the video.")
        self.assertEqual(video.content_hash, hashlib.sha256(path.read_bytes()).hexdigest())
        status = self.client.get(reverse("search:video-status", args=[video.code])).json()
        self.assertEqual((status["finished"], status["error"]), (True, "No face found in the video."))

    def test_a_file_that_only_looks_like_an_mp4_could_not_be_read(self):
        fake = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + os.urandom(100_000)
        path = self.folder / "fake.mp4"
        path.write_bytes(fake)
        video = self.upload_and_read(self.client, path)
        self.assert_rejected_by_the_worker(video, "This file could not be read as a video.")

    def test_a_large_upload_is_hashed_and_stored_from_its_temporary_file(self):
        # Past FILE_UPLOAD_MAX_MEMORY_SIZE (2 MB) Django spools the upload to disk: it is stored from there.
        data = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + os.urandom(3 * 1024 * 1024)
        response = self.upload(self.client, SimpleUploadedFile("big.mp4", data, content_type="video/mp4"))
        self.assertEqual(response.status_code, 302)
        video = ProbeVideo.objects.get()
        self.assertEqual((video.content_hash, video.size_bytes), (hashlib.sha256(data).hexdigest(), len(data)))
        with default_storage.open(video.file.name, "rb") as stored:
            self.assertEqual(stored.read(), data)


_REAL_CAPTURE = cv2.VideoCapture


class LyingCapture:
    """cv2.VideoCapture whose header declares no frame count: only the frames' own times tell the length."""

    def __init__(self, *args):
        self.capture = _REAL_CAPTURE(*args)

    def get(self, prop):
        return 0.0 if prop == cv2.CAP_PROP_FRAME_COUNT else self.capture.get(prop)

    def __getattr__(self, name):
        return getattr(self.capture, name)


class VideoDecodingTests(VideoTestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        cls.folder = cls.make_folder()
        cls.path = make_video(cls.folder / "clip.mp4", seconds=3, sharp=(1.0, 1.5))

    def setUp(self):
        sign_in(self.client, self.alice)

    def test_a_header_that_hides_the_length_does_not_make_it_read_on(self):
        work = Path(tempfile.mkdtemp(prefix="test-decode-"))
        self.addCleanup(shutil.rmtree, work)
        job = {"source": str(self.path), "work": str(work), "max_ms": 1000, "samples_per_second": 2.0}
        with mock.patch("cv2.VideoCapture", LyingCapture):
            outcome = videos._stills_decode(job | {"proposed": 8, "sensitive": False})
        self.assertEqual((outcome["outcome"], outcome["exact"]), ("too_long", False))
        self.assertEqual(outcome["duration_ms"], 1100)  # stopped at the first frame past the limit
        with override_settings(VIDEO_MAX_SECONDS=1):
            self.assertTrue(
                videos._refusal(outcome).startswith("The video lasts at least 1.1 seconds; at most 1 second")
            )

    def test_the_child_runs_under_the_address_space_cap(self):
        self.upload(self.client, upload_file(self.path))
        video = ProbeVideo.objects.get()
        work = Path(tempfile.mkdtemp(prefix="test-decode-"))
        self.addCleanup(shutil.rmtree, work)
        outcome = videos._stills_in_child(video, work)
        self.assertEqual(outcome["outcome"], "stills")
        self.assertEqual(outcome["address_space_limit"], videos.DECODE_ADDRESS_SPACE_BYTES)
        self.assertLess(outcome["peak_vm_mb"], videos.DECODE_ADDRESS_SPACE_BYTES // 1024**2)
        self.assertTrue(1000 <= outcome["stills"][0]["time_ms"] < 1500)

    def test_a_cap_too_small_fails_the_video_cleanly_as_unreadable(self):
        self.upload(self.client, upload_file(self.path))
        video = ProbeVideo.objects.get()
        with mock.patch.object(videos, "DECODE_ADDRESS_SPACE_BYTES", 300 * 1024**2):
            with self.assertLogs("search.video", "WARNING") as logs, self.captureOnCommitCallbacks(execute=True):
                videos.video_stills_find(video_id=video.id)
        self.assertIn("the decoding child ended with", logs.output[0])
        video.refresh_from_db()
        self.assertEqual(
            (video.status, video.error), (ProbeVideo.Status.FAILED, "This file could not be read as a video.")
        )
        self.assertEqual(video_files(video), [])

    def test_a_child_past_its_time_is_stopped_and_the_video_failed(self):
        self.upload(self.client, upload_file(self.path))
        video = ProbeVideo.objects.get()
        with mock.patch.object(videos, "decode_timeout_seconds", return_value=0.2):
            with self.captureOnCommitCallbacks(execute=True):
                videos.video_stills_find(video_id=video.id)
        video.refresh_from_db()
        self.assertEqual(video.status, ProbeVideo.Status.FAILED)
        self.assertEqual(
            video.error, "This file could not be read as a video. Reading it took longer than 0.2 seconds."
        )
        self.assertEqual(video_files(video), [])
