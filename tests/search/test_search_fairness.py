"""Per-agency fairness on the search queue: one agency's burst does not hold up another's searches."""

from django.conf import settings
from django.test import TestCase

from portal.celery import app
from portal.services import case_create
from search.jobs import search_job_priority
from search.models import SearchJob
from search.services import probe_submit
from tests.base import AgencyFixtureMixin, photo_bytes


def drain_search_queue() -> list[int]:
    """The queued job ids in the order a worker takes them (it reads the broker as a worker does)."""
    job_ids = []
    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue(settings.CELERY_TASK_DEFAULT_QUEUE)
        while True:
            try:
                message = queue.get(block=False)
            except queue.Empty:
                return job_ids
            args, _kwargs, _embed = message.decode()
            job_ids.append(args[0])
            message.ack()


class SearchQueueFairnessTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        cls.south_case = case_create(created_by=cls.charlie, number="S-001", title="Burglary")
        cls.photo = photo_bytes("img12.jpg")

    def setUp(self):
        drain_search_queue()  # nothing an earlier test left behind
        self.addCleanup(drain_search_queue)

    def submit(self, case, officer) -> SearchJob:
        with self.captureOnCommitCallbacks(execute=True):
            return probe_submit(case=case, uploaded_by=officer, data=self.photo, original_name="probe.jpg")

    def test_the_priority_counts_the_agencys_queued_and_running_searches(self):
        north_jobs = [self.submit(self.case, self.alice) for _ in range(4)]
        SearchJob.objects.filter(pk=north_jobs[0].pk).update(
            status=SearchJob.Status.RUNNING, stage=SearchJob.Stage.DETECTING
        )
        SearchJob.objects.filter(pk=north_jobs[1].pk).update(status=SearchJob.Status.DONE, stage=SearchJob.Stage.DONE)
        south_job = self.submit(self.south_case, self.charlie)

        self.assertEqual(search_job_priority(self.submit(self.case, self.alice).id), 3)
        self.assertEqual(search_job_priority(south_job.id), 0)

    def test_the_priority_stops_at_the_brokers_lowest(self):
        jobs = [self.submit(self.case, self.alice) for _ in range(12)]
        self.assertEqual(search_job_priority(jobs[-1].id), 9)

    def test_a_quiet_agencys_search_is_taken_before_a_bursting_agencys_backlog(self):
        north_burst = [self.submit(self.case, self.alice).id for _ in range(12)]
        south_job = self.submit(self.south_case, self.charlie).id

        order = drain_search_queue()
        # North's first search was alone (priority 0) and came first; South's, with nothing of South
        # waiting, goes ahead of the eleven North searches queued behind it, not after them.
        self.assertEqual(order, [north_burst[0], south_job] + north_burst[1:])
