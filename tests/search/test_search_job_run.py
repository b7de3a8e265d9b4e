"""The worker's part of a search, run in the test process against the real database."""

from datetime import timedelta

import time_machine
from django.conf import settings
from django.test import TestCase, override_settings
from django.utils import timezone

from search import jobs, pipeline
from search.enrolment import EnrolmentItem, gallery_enrol_batch, gallery_get_or_create
from search.models import Candidate, ProbeFace, SearchJob
from search.selectors import search_job_result
from search.services import probe_submit
from tests.base import GALLERY_PROVENANCE, AgencyFixtureMixin, faces_dir, image_bytes, media_files, photo_bytes

# A small gallery: three people, with one photo of each kept out to search with.
GALLERY = {
    "P01": ["img1.jpg", "img2.jpg", "img4.jpg"],
    "P02": ["img16.jpg", "img17.jpg"],
    "P03": ["img22.jpg", "img23.jpg"],
}


class SearchJobRunTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        gallery, _ = gallery_get_or_create(
            owner=cls.north, name="North bookings", legal_basis="Test act", **GALLERY_PROVENANCE
        )
        items = [
            EnrolmentItem(path=str(faces_dir() / name), display_name=identity)
            for identity, names in GALLERY.items()
            for name in names
        ]
        summary = gallery_enrol_batch(gallery=gallery, gallery_created=True, items=items)
        assert summary.faces_enrolled == 7, summary.as_dict()

    def submit(self, name="img5.jpg", data=None) -> SearchJob:
        with self.captureOnCommitCallbacks(execute=False):
            return probe_submit(case=self.case, uploaded_by=self.alice, data=data or photo_bytes(name))

    def test_it_finds_the_person_at_rank_one_and_times_each_stage(self):
        job = self.submit("img5.jpg")  # P01, not enrolled itself
        pipeline.search_job_run(job_id=job.id)
        job.refresh_from_db()
        self.assertEqual(job.status, SearchJob.Status.DONE)
        self.assertEqual(set(job.stage_ms), {"decode", "detect", "embed", "calibrate", "search", "render"})
        result = search_job_result(job=job)
        self.assertEqual(len(result["faces"]), 1)
        first = result["faces"][0]["candidates"][0]
        self.assertEqual((first["rank"], first["profile"], first["match"]), (1, "P01", True))
        self.assertLess(first["distance"], settings.FACE_MATCH_THRESHOLD)
        self.assertEqual(len(result["faces"][0]["candidates"]), 3)  # one per profile, not per photo
        self.assertEqual(result["faces"][0]["candidates"][1]["match"], False)
        crop = ProbeFace.objects.get(probe=job.probe).crop
        self.assertIn(crop.name, media_files())

    def test_running_it_twice_leaves_one_candidate_set(self):
        job = self.submit()
        pipeline.search_job_run(job_id=job.id)
        first = list(Candidate.objects.filter(job=job).values_list("face_image_id", "rank", "distance"))
        pipeline.search_job_run(job_id=job.id)  # a redelivered message: the job is done, nothing changes
        # An interrupted run taken over after its heartbeat went stale writes the same single set.
        SearchJob.objects.filter(pk=job.pk).update(
            status=SearchJob.Status.RUNNING,
            stage=SearchJob.Stage.DETECTING,
            heartbeat_at=timezone.now() - timedelta(minutes=5),
        )
        pipeline.search_job_run(job_id=job.id)
        job.refresh_from_db()
        self.assertEqual(job.status, SearchJob.Status.DONE)
        self.assertEqual(job.attempts, 2)
        self.assertEqual(
            list(Candidate.objects.filter(job=job).values_list("face_image_id", "rank", "distance")), first
        )
        self.assertEqual(ProbeFace.objects.filter(probe=job.probe).count(), 1)

    def test_a_job_running_with_a_fresh_heartbeat_is_left_to_its_worker(self):
        job = self.submit()
        SearchJob.objects.filter(pk=job.pk).update(
            status=SearchJob.Status.RUNNING, stage=SearchJob.Stage.DETECTING, attempts=1, heartbeat_at=timezone.now()
        )
        pipeline.search_job_run(job_id=job.id)
        job.refresh_from_db()
        self.assertEqual((job.status, job.attempts), (SearchJob.Status.RUNNING, 1))
        self.assertFalse(Candidate.objects.filter(job=job).exists())

    def test_a_photo_without_a_face_fails_with_its_reason_and_keeps_the_record(self):
        job = self.submit(data=image_bytes("PNG", size=(320, 240)))
        pipeline.search_job_run(job_id=job.id)
        job.refresh_from_db()
        self.assertEqual(job.status, SearchJob.Status.FAILED)
        self.assertEqual(job.error, "No face found in the photo.")
        self.assertEqual(
            search_job_result(job=job),
            {"job": job.id, "status": "failed", "error": "No face found in the photo.", "faces": []},
        )
        self.assertFalse(ProbeFace.objects.filter(probe=job.probe).exists())
        # The probe stays as the record of the search; no crop was written.
        self.assertEqual(
            [name for name in media_files() if name.startswith("crops/probes/") and str(job.code) in name], []
        )

    def test_a_second_agency_does_not_search_the_first_agencys_gallery(self):
        from portal.services import case_create

        south_case = case_create(created_by=self.charlie, number="S-1", title="t")
        with self.captureOnCommitCallbacks(execute=False):
            job = probe_submit(case=south_case, uploaded_by=self.charlie, data=photo_bytes("img5.jpg"))
        pipeline.search_job_run(job_id=job.id)
        job.refresh_from_db()
        self.assertEqual(job.status, SearchJob.Status.DONE)
        self.assertEqual(search_job_result(job=job)["faces"][0]["candidates"], [])


@override_settings(SEARCH_STALE_SECONDS=30, SEARCH_MAX_ATTEMPTS=3)
class SweeperTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()

    def running_job(self, *, attempts: int, heartbeat_age: int) -> SearchJob:
        with self.captureOnCommitCallbacks(execute=False):
            job = probe_submit(case=self.case, uploaded_by=self.alice, data=photo_bytes("img1.jpg"))
        SearchJob.objects.filter(pk=job.pk).update(
            status=SearchJob.Status.RUNNING,
            stage=SearchJob.Stage.DETECTING,
            attempts=attempts,
            heartbeat_at=timezone.now() - timedelta(seconds=heartbeat_age),
        )
        return job

    def test_it_requeues_a_job_whose_worker_stopped_beating(self):
        stale = self.running_job(attempts=1, heartbeat_age=31)
        fresh = self.running_job(attempts=1, heartbeat_age=5)
        with self.captureOnCommitCallbacks(execute=False) as callbacks:
            requeued = jobs.search_jobs_sweep()
        self.assertEqual(requeued, [stale.id])
        self.assertEqual(len(callbacks), 1)
        stale.refresh_from_db()
        fresh.refresh_from_db()
        self.assertEqual(stale.status, SearchJob.Status.QUEUED)
        self.assertEqual(fresh.status, SearchJob.Status.RUNNING)

    def test_a_job_becomes_stale_exactly_after_thirty_seconds(self):
        job = self.running_job(attempts=1, heartbeat_age=0)
        with time_machine.travel(timezone.now() + timedelta(seconds=29), tick=False):
            self.assertEqual(jobs.search_jobs_sweep(), [])
        with time_machine.travel(timezone.now() + timedelta(seconds=31), tick=False):
            with self.captureOnCommitCallbacks(execute=False):
                self.assertEqual(jobs.search_jobs_sweep(), [job.id])

    def test_it_fails_a_job_after_three_attempts_with_the_reason(self):
        job = self.running_job(attempts=3, heartbeat_age=60)
        self.assertEqual(jobs.search_jobs_sweep(), [])
        job.refresh_from_db()
        self.assertEqual(job.status, SearchJob.Status.FAILED)
        self.assertIn("interrupted 3 times", job.error)
