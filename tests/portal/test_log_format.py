"""Logs are JSON lines with time, level, logger, message and the job's context; a search's justification and
a photo's bytes never reach them."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from unittest import mock

from django.conf import settings
from django.test import TestCase, override_settings

from portal.log_format import JsonFormatter
from search import pipeline
from search.models import SearchJob
from tests.base import photo_bytes, shared_photo_path
from tests.factories import agency_make, case_make, gallery_make, job_make, user_make


def record(**extra) -> logging.LogRecord:
    return logging.getLogger("search.pipeline").makeRecord(
        "search.pipeline", logging.INFO, __file__, 1, "Search job %s done", (7,), None, extra=extra
    )


class CapturedLog:
    """Every record of every logger, from DEBUG up, written by the portal's JSON formatter."""

    def __enter__(self):
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(JsonFormatter())
        root = logging.getLogger()
        self.level = root.level
        root.addHandler(self.handler)
        root.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc):
        root = logging.getLogger()
        root.removeHandler(self.handler)
        root.setLevel(self.level)

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.text.splitlines()]


class JsonFormatterTests(TestCase):
    def test_a_record_is_one_json_object_with_its_context(self):
        line = JsonFormatter().format(record(job_id=7, agency_id=3, attempt=1))
        entry = json.loads(line)
        self.assertEqual(
            {key: entry[key] for key in ("level", "logger", "message", "job_id", "agency_id", "attempt")},
            {
                "level": "INFO",
                "logger": "search.pipeline",
                "message": "Search job 7 done",
                "job_id": 7,
                "agency_id": 3,
                "attempt": 1,
            },
        )
        self.assertRegex(entry["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")

    def test_context_it_does_not_know_is_left_out(self):
        entry = json.loads(
            JsonFormatter().format(record(justification="the suspect of a robbery", image=b"\xff\xd8", job_id=7))
        )
        self.assertNotIn("justification", entry)
        self.assertNotIn("image", entry)
        self.assertEqual(entry["job_id"], 7)

    def test_a_traceback_stays_on_one_line(self):
        try:
            raise ValueError("line one\nline two")
        except ValueError:
            made = logging.getLogger("x").makeRecord(
                "x", logging.ERROR, __file__, 1, "failed\nbadly", (), sys.exc_info()
            )
        line = JsonFormatter().format(made)
        self.assertEqual(len(line.splitlines()), 1)
        entry = json.loads(line)
        self.assertEqual(entry["message"], "failed\nbadly")
        self.assertIn("ValueError: line one\nline two", entry["exception"])

    def test_the_portal_logs_json_by_default(self):
        formatters = [handler.formatter for handler in logging.getLogger().handlers]
        self.assertTrue(any(isinstance(formatter, JsonFormatter) for formatter in formatters), formatters)


class SearchLogTests(TestCase):
    JUSTIFICATION = "Marker-7c1e: the man who took the bag at the bus station on CCTV"

    @classmethod
    def setUpTestData(cls):
        cls.agency = agency_make("north")
        cls.officer = user_make("alice", agency=cls.agency)
        cls.case = case_make(created_by=cls.officer)
        gallery_make(owner=cls.agency, people={"P01": [shared_photo_path("img1.jpg")]})

    @override_settings(DEBUG=True)  # Django would log every SQL statement with its values at DEBUG
    def test_a_search_logs_its_job_id_and_never_its_justification(self):
        with CapturedLog() as log:
            job = job_make(
                case=self.case,
                uploaded_by=self.officer,
                data=photo_bytes("img2.jpg"),
                purpose="Robbery",
                justification=self.JUSTIFICATION,
            )
            # A second search crashes on its last attempt: the traceback is logged with its job id.
            crashing = job_make(
                case=self.case,
                uploaded_by=self.officer,
                data=photo_bytes("img2.jpg"),
                run=False,
                purpose="Robbery",
                justification=self.JUSTIFICATION,
            )
            SearchJob.objects.filter(pk=crashing.pk).update(attempts=settings.SEARCH_MAX_ATTEMPTS - 1)
            with mock.patch("search.pipeline.index.nearest_profiles", side_effect=RuntimeError("drill")):
                pipeline.search_job_run(job_id=crashing.id)
        self.assertEqual(job.status, SearchJob.Status.DONE)
        self.assertNotIn("Marker-7c1e", log.text)
        self.assertNotIn(self.JUSTIFICATION[20:], log.text)
        records = log.records()
        mine = [r for r in records if r.get("job_id") == job.id]
        self.assertTrue(any(r["message"].startswith(f"Search job {job.id} ran to its end") for r in mine), records)
        self.assertTrue(all(r["agency_id"] == self.agency.id for r in mine))
        failed = [r for r in records if r.get("job_id") == crashing.id and r["level"] == "ERROR"]
        self.assertEqual(len(failed), 1, records)
        self.assertIn("RuntimeError: drill", failed[0]["exception"])

    def test_a_job_waiting_for_the_broker_is_logged_with_its_id(self):
        from kombu.exceptions import OperationalError

        from search.jobs import search_job_enqueue

        job = job_make(case=self.case, uploaded_by=self.officer, data=photo_bytes("img2.jpg"), run=False)
        with (
            CapturedLog() as log,
            mock.patch("search.publish.search_job_run.apply_async", side_effect=OperationalError("down")),
        ):
            self.assertFalse(search_job_enqueue(job.id))
        [waiting] = [r for r in log.records() if r["logger"] == "search.jobs"]
        self.assertEqual((waiting["level"], waiting["job_id"]), ("WARNING", job.id))


def test_an_unknown_log_format_is_refused():
    env = os.environ | {"PORTAL_LOG_FORMAT": "xml"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "PORTAL_LOG_FORMAT must be json or text" in result.stderr


def test_the_text_format_writes_plain_lines():
    code = "import django, logging; django.setup(); logging.getLogger('portal').warning('plain %s', 'line')"
    env = os.environ | {"PORTAL_LOG_FORMAT": "text", "DJANGO_SETTINGS_MODULE": "portal.settings"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().endswith("WARNING portal plain line")
    assert not result.stderr.strip().startswith("{")
