"""A queued search whose message the broker lost (killed outright) is published again, once per period."""

import importlib
import threading
from datetime import timedelta

import time_machine
from django.apps import apps
from django.db import connection, transaction
from django.test import TestCase, TransactionTestCase, override_settings
from django.utils import timezone

from portal.models import AuditEntry
from search import jobs, pipeline, services
from search.models import Candidate, OffenseCategory, SearchJob
from tests.base import AgencyFixtureMixin, photo_bytes
from tests.factories import case_make
from tests.search.test_search_job_enqueue import broker_down, broker_up


@override_settings(SEARCH_STALE_SECONDS=30, SEARCH_REPUBLISH_SECONDS=300, SEARCH_MAX_ATTEMPTS=3)
class SearchJobRepublishTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()

    def setUp(self):
        self.start = timezone.now().replace(microsecond=0)
        self.clock = time_machine.travel(self.start, tick=False)
        self.traveller = self.clock.start()
        self.addCleanup(self.clock.stop)

    def at(self, seconds: float) -> None:
        self.traveller.move_to(self.start + timedelta(seconds=seconds))

    def submit(self, *, case=None, by=None) -> SearchJob:
        with broker_up(), self.captureOnCommitCallbacks(execute=True):
            job = services.probe_submit(
                case=case or self.case, uploaded_by=by or self.alice, data=photo_bytes("img5.jpg")
            )
        job.refresh_from_db()
        return job

    def sweep(self) -> list[int]:
        with self.captureOnCommitCallbacks(execute=True):
            return jobs.search_jobs_sweep()

    def published_at(self, job: SearchJob):
        return SearchJob.objects.get(pk=job.pk).published_at

    def test_a_job_published_299_seconds_ago_is_not_published_again(self):
        job = self.submit()
        self.assertEqual(job.published_at, self.start)
        self.at(299)
        with broker_up() as publish:
            self.assertEqual(self.sweep(), [])
        publish.assert_not_called()
        self.assertEqual(self.published_at(job), self.start)

    def test_a_job_published_301_seconds_ago_is_published_again_and_its_publication_time_moves(self):
        job = self.submit()
        self.at(301)
        with broker_up() as publish:
            self.assertEqual(self.sweep(), [job.id])
        publish.assert_called_once_with((job.id,), priority=0, countdown=None)
        self.assertEqual(self.published_at(job), self.start + timedelta(seconds=301))

    def test_it_is_published_again_exactly_once_per_period(self):
        job = self.submit()
        published = []
        with broker_up() as publish:
            for second in range(0, 16 * 60 + 1, 15):  # beat's sweeps, every 15 s for 16 minutes
                self.at(second)
                if self.sweep():
                    published.append(second)
        # Each republication starts a new period: 315 s is the first sweep past 300 s, then 630, 945.
        self.assertEqual(published, [315, 630, 945])
        self.assertEqual(publish.call_count, 3)
        self.assertEqual(self.published_at(job), self.start + timedelta(seconds=945))

    def test_a_republished_job_keeps_its_agencys_priority(self):
        north_first, north_second = self.submit(), self.submit()
        south = self.submit(case=case_make(created_by=self.charlie), by=self.charlie)
        self.at(301)
        with broker_up() as publish:
            self.assertEqual(sorted(self.sweep()), sorted([north_first.id, north_second.id, south.id]))
        # Each North search has the other one waiting; South has nothing else.
        self.assertEqual(
            sorted((args[0][0], kwargs["priority"]) for args, kwargs in publish.call_args_list),
            sorted([(north_first.id, 1), (north_second.id, 1), (south.id, 0)]),
        )

    def test_a_running_or_finished_job_is_never_published_again(self):
        running, done, failed = self.submit(), self.submit(), self.submit()
        self.assertEqual(jobs.search_job_claim(job_id=running.id), 1)
        SearchJob.objects.filter(pk=done.pk).update(
            status=SearchJob.Status.DONE, stage=SearchJob.Stage.DONE, finished_at=timezone.now()
        )
        SearchJob.objects.filter(pk=failed.pk).update(
            status=SearchJob.Status.FAILED, stage=SearchJob.Stage.FAILED, finished_at=timezone.now()
        )
        with broker_up() as publish:
            for second in (301, 601, 3600):
                self.at(second)
                # Its worker is alive: the heartbeat thread keeps it fresh.
                SearchJob.objects.filter(pk=running.pk).update(heartbeat_at=timezone.now())
                self.assertEqual(self.sweep(), [])
        publish.assert_not_called()
        for job in (running, done, failed):
            self.assertEqual(self.published_at(job), self.start)

    def test_a_second_delivery_runs_nothing_whether_the_job_is_queued_running_or_done(self):
        job = self.submit()
        self.at(301)
        with broker_up():
            self.assertEqual(self.sweep(), [job.id])  # two messages for the job on the broker now
        self.assertEqual(jobs.search_job_claim(job_id=job.id), 1)  # the first delivery takes it
        results_before = AuditEntry.objects.filter(action=AuditEntry.Action.SEARCH_RESULTS).count()
        pipeline.search_job_run(job_id=job.id)  # the second, while the first runs: left to its worker
        job.refresh_from_db()
        self.assertEqual((job.status, job.attempts), (SearchJob.Status.RUNNING, 1))
        SearchJob.objects.filter(pk=job.pk).update(
            status=SearchJob.Status.DONE, stage=SearchJob.Stage.DONE, finished_at=timezone.now()
        )
        pipeline.search_job_run(job_id=job.id)  # the second, after the first finished: nothing either
        job.refresh_from_db()
        self.assertEqual((job.status, job.attempts), (SearchJob.Status.DONE, 1))
        self.assertFalse(Candidate.objects.filter(job=job).exists())
        self.assertEqual(AuditEntry.objects.filter(action=AuditEntry.Action.SEARCH_RESULTS).count(), results_before)

    def test_a_republication_the_broker_refuses_is_tried_again_at_the_next_sweep(self):
        first, second = self.submit(), self.submit()
        self.at(301)
        with broker_down():
            self.assertEqual(sorted(self.sweep()), sorted([first.id, second.id]))
        # Neither reached the broker: no publication on record, so the next sweep (not the next period) tries.
        self.assertEqual((self.published_at(first), self.published_at(second)), (None, None))
        self.at(316)
        with broker_up() as publish:
            self.assertEqual(sorted(self.sweep()), sorted([first.id, second.id]))
        self.assertEqual(publish.call_count, 2)
        self.assertEqual(self.published_at(first), self.start + timedelta(seconds=316))

    def test_a_requeued_job_records_its_new_publication(self):
        job = self.submit()
        self.assertEqual(jobs.search_job_claim(job_id=job.id), 1)
        self.at(31)  # its worker stopped beating
        with broker_up() as publish:
            self.assertEqual(self.sweep(), [job.id])
        publish.assert_called_once()
        job.refresh_from_db()
        self.assertEqual(
            (job.status, job.heartbeat_at, job.published_at),
            (SearchJob.Status.QUEUED, None, self.start + timedelta(seconds=31)),
        )


@override_settings(SEARCH_STALE_SECONDS=30, SEARCH_REPUBLISH_SECONDS=300)
class TwoSweepersTests(AgencyFixtureMixin, TransactionTestCase):
    """Beat on two hosts: each row is claimed, so one of them publishes a job again in a period."""

    def setUp(self):
        # A TransactionTestCase run before this one may have flushed the categories the migrations add.
        OffenseCategory.objects.get_or_create(name="Robbery")
        self.create_agencies()

    def test_two_sweepers_publish_a_job_again_once_between_them(self):
        with broker_up() as publish:
            job = services.probe_submit(case=self.case, uploaded_by=self.alice, data=photo_bytes("img5.jpg"))
            SearchJob.objects.filter(pk=job.pk).update(published_at=timezone.now() - timedelta(seconds=301))
            claimed, release, first = threading.Event(), threading.Event(), []

            def first_sweeper():
                try:
                    with transaction.atomic():  # holds its claim until released
                        first.extend(jobs.search_jobs_sweep())
                        claimed.set()
                        release.wait(30)
                finally:
                    connection.close()

            thread = threading.Thread(target=first_sweeper)
            thread.start()
            self.assertTrue(claimed.wait(30))
            self.assertEqual(jobs.search_jobs_sweep(), [])  # while the first holds the row
            release.set()
            thread.join(30)
            self.assertEqual(first, [job.id])
            self.assertEqual(jobs.search_jobs_sweep(), [])  # after the first published it
        self.assertEqual(publish.call_count, 2)  # the upload's and the first sweeper's


class PublishedAtMigrationTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()

    def test_a_queued_jobs_heartbeat_becomes_its_publication_time(self):
        migration = importlib.import_module("search.migrations.0013_searchjob_published_at")
        with broker_up(), self.captureOnCommitCallbacks(execute=False):
            published, never, running = (
                services.probe_submit(case=self.case, uploaded_by=self.alice, data=photo_bytes("img5.jpg"))
                for _ in range(3)
            )
        beat = timezone.now() - timedelta(seconds=40)
        SearchJob.objects.filter(pk=published.pk).update(heartbeat_at=beat)
        SearchJob.objects.filter(pk=running.pk).update(
            status=SearchJob.Status.RUNNING, stage=SearchJob.Stage.DETECTING, heartbeat_at=beat
        )
        migration.queued_heartbeat_to_published_at(apps, None)
        self.assertEqual(self.rows(), {published.pk: (None, beat), never.pk: (None, None), running.pk: (beat, None)})
        migration.queued_published_at_to_heartbeat(apps, None)  # backwards: the old meaning again
        self.assertEqual(self.rows(), {published.pk: (beat, beat), never.pk: (None, None), running.pk: (beat, None)})

    def rows(self) -> dict:
        return {
            pk: (heartbeat_at, published_at)
            for pk, heartbeat_at, published_at in SearchJob.objects.values_list("pk", "heartbeat_at", "published_at")
        }
