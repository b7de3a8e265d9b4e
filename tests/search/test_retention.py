"""Retention on a controlled clock: probe photos (with their prepared copies) and recorded videos (with their
stills) 90 days after their case is closed, gallery faces when their gallery's retention ends unless on legal
hold; exactly what has expired goes."""

import io
from datetime import timedelta

import time_machine
from django.core.management import call_command
from django.test import TestCase
from django.utils import timezone

from portal.models import AuditEntry
from portal.services import case_close, case_create
from search import pipeline
from search.enrolment import EnrolmentItem, gallery_enrol_batch, gallery_get_or_create
from search.models import Candidate, FaceDescriptor, FaceImage, Probe, ProbeFace, ProbeVideo, Profile
from search.retention import purge_expired
from search.services import probe_submit
from search.storage import media_store
from tests.base import AgencyFixtureMixin, faces_dir, media_files, photo_bytes


class RetentionTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        cls.start = timezone.now()
        cls.short, _ = gallery_get_or_create(
            owner=cls.north,
            name="Short",
            legal_basis="Act",
            source_type="wanted",
            responsible_person="Unit",
            retention_days=30,
        )
        cls.held, _ = gallery_get_or_create(
            owner=cls.north,
            name="Held",
            legal_basis="Act",
            source_type="wanted",
            responsible_person="Unit",
            retention_days=30,
        )
        cls.held.legal_hold = True
        cls.held.save()
        gallery_enrol_batch(
            gallery=cls.short,
            gallery_created=True,
            items=[EnrolmentItem(path=str(faces_dir() / "img1.jpg"), display_name="Short-lived")],
        )
        gallery_enrol_batch(
            gallery=cls.held,
            gallery_created=True,
            items=[EnrolmentItem(path=str(faces_dir() / "img16.jpg"), display_name="On hold")],
        )
        cls.old_case = case_create(created_by=cls.alice, number="N-OLD", title="Closed long ago")
        job = probe_submit(case=cls.old_case, uploaded_by=cls.alice, data=photo_bytes("img2.jpg"))
        pipeline.search_job_run(job_id=job.id)
        cls.old_probe = job.probe
        case_close(case=cls.old_case, actor=cls.alice)
        job = probe_submit(case=cls.case, uploaded_by=cls.alice, data=photo_bytes("img4.jpg"))  # case stays open
        pipeline.search_job_run(job_id=job.id)
        cls.open_probe = job.probe
        cls.job = job

    def test_nothing_expires_early(self):
        with time_machine.travel(self.start + timedelta(days=29), tick=False):
            plan = purge_expired()
        self.assertEqual((plan.probes, plan.face_images), ([], []))

    def test_exactly_what_has_expired_is_removed(self):
        probe_files = [self.old_probe.image.name] + [
            f.crop.name for f in ProbeFace.objects.filter(probe=self.old_probe)
        ]
        face = FaceImage.objects.get(gallery=self.short)
        face_files = [face.image.name, face.crop.name]
        with time_machine.travel(self.start + timedelta(days=91), tick=False):
            with self.captureOnCommitCallbacks(execute=True):
                plan = purge_expired()
        self.assertEqual([p.id for p in plan.probes], [self.old_probe.id])
        self.assertEqual([f.id for f in plan.face_images], [face.id])
        self.assertFalse(FaceDescriptor.objects.filter(face_image_id=face.id).exists())
        self.assertEqual(FaceDescriptor.objects.count(), FaceImage.objects.count())
        remaining = set(media_files())
        self.assertFalse(set(probe_files + face_files) & remaining)
        self.assertIn(self.open_probe.image.name, remaining)
        self.old_probe.refresh_from_db()
        self.assertEqual((self.old_probe.image.name, self.old_probe.purged_at is not None), ("", True))
        self.assertFalse(Profile.objects.filter(display_name="Short-lived").exists())
        self.assertTrue(FaceImage.objects.filter(gallery=self.held).exists())  # legal hold
        marked = Candidate.objects.filter(erased_reason__contains="retention")
        self.assertTrue(marked.exists())
        self.assertTrue(AuditEntry.objects.filter(action="retention_purge").exists())
        # Each searching agency reads in its own audit that a candidate of its search was removed, and when.
        told = AuditEntry.objects.filter(action=AuditEntry.Action.CANDIDATE_ERASED)
        self.assertEqual({(e.target_id, e.agency_id) for e in told}, {(str(c.job_id), c.job.agency_id) for c in marked})
        self.assertIn("removed when its gallery's retention period ended on", told.first().detail)

    def test_the_command_has_a_dry_run_that_changes_nothing(self):
        out = io.StringIO()
        with time_machine.travel(self.start + timedelta(days=91), tick=False):
            call_command("purge_expired", "--dry-run", stdout=out)
        self.assertIn("Would remove 1 probe photos and 1 gallery faces.", out.getvalue())
        self.assertIn("case N-OLD", out.getvalue())
        self.assertTrue(Probe.objects.get(pk=self.old_probe.pk).image)
        self.assertEqual(FaceImage.objects.count(), 2)

    def test_a_probe_whose_search_still_runs_waits_for_the_next_purge(self):
        from search.models import SearchJob

        SearchJob.objects.filter(probe=self.old_probe).update(
            status=SearchJob.Status.RUNNING, stage=SearchJob.Stage.DETECTING
        )
        with time_machine.travel(self.start + timedelta(days=91), tick=False):
            plan = purge_expired(dry_run=True)
        self.assertEqual(plan.probes, [])


class VideoRetentionTests(AgencyFixtureMixin, TestCase):
    """Videos and their stills go with their case's probes, PROBE_RETENTION_DAYS after it closed; so does the
    prepared copy of a probe photo."""

    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        cls.start = timezone.now()
        cls.old_case = case_create(created_by=cls.alice, number="N-OLD", title="Closed long ago")
        job = probe_submit(case=cls.old_case, uploaded_by=cls.alice, data=photo_bytes("img2.jpg"))
        pipeline.search_job_run(job_id=job.id)
        cls.prepared = media_store(f"probes/{cls.north.code}/prepared-test.jpg", photo_bytes("img2.jpg"))
        Probe.objects.filter(pk=job.probe_id).update(prepared_image=cls.prepared, prepared_hash="f" * 64)
        cls.old_probe = job.probe
        cls.old_video = cls.video_make(cls.old_case)
        cls.busy_video = cls.video_make(cls.old_case, status=ProbeVideo.Status.RUNNING)
        cls.refused_video = cls.video_make(cls.old_case, status=ProbeVideo.Status.FAILED, stored=False)
        cls.still_search = probe_submit(
            case=cls.old_case,
            uploaded_by=cls.alice,
            data=photo_bytes("img5.jpg"),
            video=cls.old_video,
            frame_time_ms=cls.old_video.stills[0]["time_ms"],
        )
        pipeline.search_job_run(job_id=cls.still_search.id)
        case_close(case=cls.old_case, actor=cls.alice)
        cls.open_video = cls.video_make(cls.case)

    @classmethod
    def video_make(cls, case, *, status=ProbeVideo.Status.READY, stored=True) -> ProbeVideo:
        video = ProbeVideo(
            agency=case.agency,
            case=case,
            uploaded_by=cls.alice,
            original_name="cctv.mp4",
            content_hash="a" * 64,
            size_bytes=5,
            container="mp4",
            status=status,
        )
        folder = f"videos/{case.agency.code}/{video.code}"
        if stored:
            video.file = media_store(f"{folder}/source.mp4", b"video")
            video.stills = [
                {
                    "time_ms": ms,
                    "image": media_store(f"{folder}/still-{ms}.jpg", photo_bytes("img5.jpg")),
                    "sharpness": 100.0,
                    "faces": 1,
                }
                for ms in (1500, 3000)
            ]
        video.save()
        return video

    def setUp(self):
        # A purge in an earlier test deleted files, which the rolled-back transaction does not bring back.
        for video in (self.old_video, self.busy_video, self.open_video):
            media_store(video.file.name, b"video")
            for still in video.stills:
                media_store(still["image"], photo_bytes("img5.jpg"))
        media_store(self.prepared, photo_bytes("img2.jpg"))

    def video_files(self, video) -> list[str]:
        return [video.file.name, *(still["image"] for still in video.stills)]

    def test_nothing_expires_early(self):
        with time_machine.travel(self.start + timedelta(days=89), tick=False):
            plan = purge_expired()
        self.assertEqual((plan.probes, plan.videos), ([], []))
        self.assertTrue(set(self.video_files(self.old_video)) <= set(media_files()))

    def test_a_closed_case_loses_its_videos_and_stills_with_its_probes_and_their_prepared_copies(self):
        with time_machine.travel(self.start + timedelta(days=91), tick=False):
            with self.captureOnCommitCallbacks(execute=True):
                plan = purge_expired()
        self.assertEqual([v.id for v in plan.videos], [self.old_video.id])
        self.assertEqual({p.id for p in plan.probes}, {self.old_probe.id, self.still_search.probe_id})
        remaining = set(media_files())
        self.assertFalse((set(self.video_files(self.old_video)) | {self.prepared}) & remaining)
        self.assertTrue(set(self.video_files(self.open_video)) <= remaining)
        self.assertTrue(set(self.video_files(self.busy_video)) <= remaining)  # still being read: next purge
        self.old_video.refresh_from_db()
        self.assertEqual((self.old_video.file.name, self.old_video.stills), ("", []))
        self.assertIsNotNone(self.old_video.purged_at)
        self.assertEqual(self.old_video.content_hash, "a" * 64)  # the record of what was searched stays
        probe = Probe.objects.get(pk=self.old_probe.pk)
        self.assertEqual((probe.image.name, probe.prepared_image.name), ("", ""))
        searched = Probe.objects.get(pk=self.still_search.probe_id)
        self.assertEqual((searched.video_hash, searched.frame_time_ms), ("a" * 64, 1500))
        entry = AuditEntry.objects.filter(action="retention_purge").latest("id")
        self.assertEqual(entry.data["video_ids"], [self.old_video.id])
        self.assertIn("1 videos", entry.detail)

    def test_the_command_names_the_videos_it_would_remove(self):
        out = io.StringIO()
        with time_machine.travel(self.start + timedelta(days=91), tick=False):
            call_command("purge_expired", "--dry-run", stdout=out)
        self.assertIn("Would remove 1 videos with their stills.", out.getvalue())
        self.assertIn(f"video {self.old_video.code} of case", out.getvalue())
        self.assertTrue(ProbeVideo.objects.get(pk=self.old_video.pk).file)

    def test_the_purged_video_page_says_so_and_serves_no_still(self):
        from django.urls import reverse

        from tests.base import sign_in

        with time_machine.travel(self.start + timedelta(days=91), tick=False):
            with self.captureOnCommitCallbacks(execute=True):
                purge_expired()
        sign_in(self.client, self.alice)
        html = self.client.get(reverse("search:video-detail", args=[self.old_video.code])).content.decode()
        self.assertIn("were deleted</strong> under the retention rule", html)
        self.assertEqual(
            self.client.get(reverse("search:video-still-image", args=[self.old_video.code, 1])).status_code, 404
        )

    def test_a_refused_video_has_nothing_left_to_purge(self):
        with time_machine.travel(self.start + timedelta(days=91), tick=False):
            plan = purge_expired(dry_run=True)
        self.assertNotIn(self.refused_video.id, [v.id for v in plan.videos])
