"""Publishing a search's message: a broker that cannot be reached for a while loses no search."""

from datetime import timedelta
from unittest import mock

from django.test import TestCase, override_settings
from django.utils import timezone
from kombu.exceptions import OperationalError

from search import jobs, publish, services
from search.models import SearchJob
from tests.base import AgencyFixtureMixin, media_files, photo_bytes


def broker_down():
    return mock.patch.object(
        publish.search_job_run, "apply_async", side_effect=OperationalError("Error 2 connecting to valkey.sock")
    )


def broker_up():
    return mock.patch.object(publish.search_job_run, "apply_async")


@override_settings(SEARCH_STALE_SECONDS=30, SEARCH_MAX_ATTEMPTS=3)
class SearchJobEnqueueTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()

    def submit(self) -> SearchJob:
        with self.captureOnCommitCallbacks(execute=True):
            job = services.probe_submit(case=self.case, uploaded_by=self.alice, data=photo_bytes("img5.jpg"))
        job.refresh_from_db()
        return job

    def sweep(self, *, after_seconds: int) -> list[int]:
        with self.captureOnCommitCallbacks(execute=True):
            return jobs.search_jobs_sweep(now=timezone.now() + timedelta(seconds=after_seconds))

    def test_a_published_job_records_when_it_reached_the_broker(self):
        with broker_up() as publish:
            job = self.submit()
        publish.assert_called_once()
        self.assertEqual(job.status, SearchJob.Status.QUEUED)
        self.assertIsNotNone(job.published_at)
        self.assertIsNone(job.heartbeat_at)  # no worker beats for a queued job

    def test_a_search_submitted_while_the_broker_is_down_is_kept_with_its_photo(self):
        with broker_down():
            job = self.submit()
        self.assertEqual((job.status, job.published_at), (SearchJob.Status.QUEUED, None))
        self.assertIn(job.probe.image.name, media_files())

    def test_the_sweeper_publishes_a_job_that_never_reached_the_broker_once(self):
        with broker_down():
            job = self.submit()
        with broker_up() as publish:
            self.assertEqual(self.sweep(after_seconds=0), [])  # just submitted: its own publish may be under way
            self.assertEqual(self.sweep(after_seconds=31), [job.id])
            self.assertEqual(self.sweep(after_seconds=62), [])
        publish.assert_called_once()
        job.refresh_from_db()
        self.assertEqual(job.status, SearchJob.Status.QUEUED)
        self.assertIsNotNone(job.published_at)

    def test_a_job_requeued_while_the_broker_is_down_is_published_by_a_later_sweep(self):
        with broker_up():
            job = self.submit()
        SearchJob.objects.filter(pk=job.pk).update(
            status=SearchJob.Status.RUNNING, stage=SearchJob.Stage.DETECTING, attempts=1, heartbeat_at=timezone.now()
        )
        with broker_down():
            self.assertEqual(self.sweep(after_seconds=31), [job.id])
        job.refresh_from_db()
        self.assertEqual((job.status, job.heartbeat_at, job.published_at), (SearchJob.Status.QUEUED, None, None))
        with broker_up() as publish:
            self.assertEqual(self.sweep(after_seconds=32), [job.id])
        publish.assert_called_once()
