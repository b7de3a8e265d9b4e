"""Retention on a controlled clock: probe photos 90 days after their case is closed, gallery faces when
their gallery's retention ends unless on legal hold; exactly what has expired goes."""

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
from search.models import Candidate, FaceImage, Probe, ProbeFace, Profile
from search.retention import purge_expired
from search.services import probe_submit
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
