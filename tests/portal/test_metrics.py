"""/metrics against the real database and broker: who may scrape it, and that its figures follow the
searches, the broker's priority lists and the workers' heartbeats."""

from __future__ import annotations

import uuid
from datetime import timedelta
from unittest import mock

from django.conf import settings
from django.test import Client, TestCase, override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from portal.celery import app
from portal.ops import metrics as ops_metrics
from portal.ops.broker import broker_channel
from search import selectors
from search.models import SearchJob
from tests.base import image_bytes
from tests.factories import agency_make, case_make, job_make, user_make
from tests.portal.test_health import DEAD_BROKER, HeartbeatKey

TOKEN = "a-metrics-token-of-enough-length-1234"


def samples(response) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) → value, from an exposition text."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


class MetricsAccessTests(TestCase):
    def test_it_answers_the_local_address_by_default(self):
        response = Client(REMOTE_ADDR="127.0.0.1").get("/metrics")
        self.assertEqual(response.status_code, 200)
        self.assertTrue(response["Content-Type"].startswith("text/plain; version="))
        self.assertEqual(Client(REMOTE_ADDR="::1").get("/metrics").status_code, 200)

    def test_it_refuses_another_address(self):
        response = Client(REMOTE_ADDR="203.0.113.9").get("/metrics")
        self.assertEqual(response.status_code, 403)
        self.assertNotIn(b"portal_", response.content)

    @override_settings(METRICS_ALLOWED=["10.20.0.0/16"])
    def test_it_answers_an_allowed_network(self):
        self.assertEqual(Client(REMOTE_ADDR="10.20.3.4").get("/metrics").status_code, 200)
        self.assertEqual(Client(REMOTE_ADDR="10.21.3.4").get("/metrics").status_code, 403)
        self.assertEqual(Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code, 403)

    @override_settings(METRICS_TOKEN=TOKEN)
    def test_it_answers_the_right_token_from_anywhere(self):
        client = Client(REMOTE_ADDR="203.0.113.9")
        self.assertEqual(client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code, 200)

    @override_settings(METRICS_TOKEN=TOKEN)
    def test_it_refuses_a_wrong_token(self):
        client = Client(REMOTE_ADDR="203.0.113.9")
        for header in (f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer ", f"Basic {TOKEN}", TOKEN):
            self.assertEqual(client.get("/metrics", HTTP_AUTHORIZATION=header).status_code, 403, header)

    def test_without_a_configured_token_no_token_opens_it(self):
        client = Client(REMOTE_ADDR="203.0.113.9")
        self.assertEqual(client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code, 403)
        self.assertEqual(client.get("/metrics", HTTP_AUTHORIZATION="Bearer").status_code, 403)

    @override_settings(TRUSTED_PROXIES=["127.0.0.1"])
    def test_behind_a_local_proxy_the_client_address_counts_not_the_proxy(self):
        through_proxy = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9")
        self.assertEqual(through_proxy.get("/metrics").status_code, 403)
        self.assertEqual(Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code, 200)

    def test_a_forged_forwarded_header_does_not_open_it(self):
        forged = Client(REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="127.0.0.1")
        self.assertEqual(forged.get("/metrics").status_code, 403)

    def test_it_answers_get_only(self):
        self.assertEqual(Client(REMOTE_ADDR="127.0.0.1").post("/metrics").status_code, 405)


class MetricsFiguresTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        agency = agency_make("north")
        officer = user_make("alice", agency=agency)
        case = case_make(created_by=officer)
        cls.jobs = {status: [] for status in SearchJob.Status.values}
        for status, count in (("queued", 2), ("running", 1), ("done", 3), ("failed", 1)):
            for _ in range(count):
                job = job_make(case=case, uploaded_by=officer, data=image_bytes(), run=False)
                # The stage its status allows (search_job_stage_matches_status).
                stage = SearchJob.Stage.DETECTING if status == "running" else status
                SearchJob.objects.filter(pk=job.pk).update(status=status, stage=stage)
                cls.jobs[status].append(job)
        # The oldest queued job has waited two minutes; two done jobs carry stage timings.
        SearchJob.objects.filter(pk=cls.jobs["queued"][0].pk).update(created_at=timezone.now() - timedelta(minutes=2))
        # One finished an hour ago (settled: read once per process), one just now.
        SearchJob.objects.filter(pk=cls.jobs["done"][0].pk).update(
            stage_ms={"decode": 12.0, "detect": 300.0}, finished_at=timezone.now() - timedelta(hours=1)
        )
        SearchJob.objects.filter(pk=cls.jobs["done"][1].pk).update(
            stage_ms={"decode": 40.0, "detect": 2000.0, "search": 7.5}, finished_at=timezone.now()
        )

    def setUp(self):
        ops_metrics.stage_histogram.reset()  # its settled part belongs to another test's rows

    def scrape(self) -> dict:
        response = Client(REMOTE_ADDR="127.0.0.1").get("/metrics")
        self.assertEqual(response.status_code, 200)
        return samples(response)

    def test_it_counts_searches_by_status(self):
        figures = self.scrape()
        self.assertEqual(
            {status: figures[("portal_search_jobs", (("status", status),))] for status in SearchJob.Status.values},
            {"queued": 2, "running": 1, "done": 3, "failed": 1},
        )

    def test_a_new_job_shows_at_the_next_scrape(self):
        SearchJob.objects.filter(pk=self.jobs["running"][0].pk).update(status="done", stage="done")
        figures = self.scrape()
        self.assertEqual(figures[("portal_search_jobs", (("status", "running"),))], 0)
        self.assertEqual(figures[("portal_search_jobs", (("status", "done"),))], 4)

    def test_it_gives_the_age_of_the_oldest_queued_search(self):
        age = self.scrape()[("portal_search_oldest_queued_age_seconds", ())]
        self.assertGreaterEqual(age, 120)
        self.assertLess(age, 180)
        SearchJob.objects.filter(status="queued").update(status="failed", stage="failed")
        self.assertEqual(self.scrape()[("portal_search_oldest_queued_age_seconds", ())], 0)

    def test_it_gives_stage_durations_as_histograms(self):
        figures = self.scrape()

        def bucket(stage, le):
            return figures[("portal_search_stage_seconds_bucket", (("le", le), ("stage", stage)))]

        self.assertEqual(figures[("portal_search_stage_seconds_count", (("stage", "decode"),))], 2)
        self.assertAlmostEqual(figures[("portal_search_stage_seconds_sum", (("stage", "decode"),))], 0.052)
        self.assertEqual((bucket("decode", "0.01"), bucket("decode", "0.025"), bucket("decode", "0.05")), (0, 1, 2))
        self.assertEqual(
            (bucket("detect", "0.25"), bucket("detect", "0.5"), bucket("detect", "2.5"), bucket("detect", "+Inf")),
            (0, 1, 2, 2),
        )
        self.assertEqual(figures[("portal_search_stage_seconds_count", (("stage", "search"),))], 1)
        self.assertEqual(figures[("portal_search_stage_seconds_count", (("stage", "render"),))], 0)

    def test_the_settled_part_is_read_once_and_new_jobs_still_count(self):
        with mock.patch(
            "portal.ops.metrics.selectors.search_stage_histogram", wraps=selectors.search_stage_histogram
        ) as read:
            first = self.scrape()[("portal_search_stage_seconds_count", (("stage", "decode"),))]
            SearchJob.objects.filter(pk=self.jobs["done"][2].pk).update(
                stage_ms={"decode": 5.0}, finished_at=timezone.now()
            )
            second = self.scrape()[("portal_search_stage_seconds_count", (("stage", "decode"),))]
        self.assertEqual((first, second), (2, 3))
        settled_reads = [call for call in read.call_args_list if call.kwargs.get("finished_before")]
        self.assertEqual(len(settled_reads), 1)

    def test_it_includes_the_process_default_metrics(self):
        figures = self.scrape()
        names = {name for name, _ in figures}
        self.assertLessEqual({"process_resident_memory_bytes", "process_cpu_seconds_total", "python_info"}, names)

    def test_it_counts_live_worker_heartbeats(self):
        queue = settings.CELERY_TASK_DEFAULT_QUEUE
        self.assertEqual(self.scrape()[("portal_workers", (("queue", queue),))], 0)
        with HeartbeatKey(), HeartbeatKey():
            self.assertEqual(self.scrape()[("portal_workers", (("queue", queue),))], 2)

    def test_it_gives_the_depth_of_each_priority_list_of_the_queue(self):
        queue = f"metrics-test-{uuid.uuid4().hex[:8]}"
        # Published as the portal publishes (Celery on kombu's Redis transport), to a queue no worker reads.
        for priority in (0, 5, 5, 9):
            app.send_task("portal.tests.never_run", queue=queue, priority=priority)
        try:
            with override_settings(CELERY_TASK_DEFAULT_QUEUE=queue):
                figures = self.scrape()
        finally:
            with broker_channel() as channel:
                channel.client.delete(
                    queue,
                    *[f"{queue}{channel.sep}{step}" for step in range(1, 10)],
                    f"_kombu.binding.{queue}",
                    f"_kombu.binding_permanent.{queue}",
                )
        depths = {
            priority: figures[("portal_broker_queue_messages", (("priority", str(priority)), ("queue", queue)))]
            for priority in range(10)
        }
        self.assertEqual(depths, {0: 1, 1: 0, 2: 0, 3: 0, 4: 0, 5: 2, 6: 0, 7: 0, 8: 0, 9: 1})

    @override_settings(CELERY_BROKER_URL=DEAD_BROKER)
    def test_with_the_broker_unreachable_it_still_answers_the_database_figures(self):
        with self.assertLogs("portal.ops.metrics", "WARNING"):
            figures = self.scrape()
        self.assertEqual(figures[("portal_dependency_up", (("dependency", "broker"),))], 0)
        self.assertEqual(figures[("portal_dependency_up", (("dependency", "database"),))], 1)
        self.assertEqual(figures[("portal_search_jobs", (("status", "queued"),))], 2)
        self.assertNotIn("portal_workers", {name for name, _ in figures})
