"""/healthz and /readyz against the real database and broker: what each check reports, which failures make
the portal "down" (503) and which only "degraded" (200), and a real worker's heartbeat."""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from unittest import mock

import pytest
from django.conf import settings
from django.test import TestCase, override_settings

from portal.ops import health
from portal.ops.broker import broker_channel
from portal.ops.heartbeat import heartbeat_clear, heartbeat_write, workers_alive
from search.faces import ModelFile
from tests.portal.test_security_headers import run_under_production_settings

DEAD_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1


class HeartbeatKey:
    """A worker's heartbeat written by hand into the real broker, removed afterwards."""

    def __init__(self, queue: str | None = None):
        self.queue = queue or settings.CELERY_TASK_DEFAULT_QUEUE
        self.worker = f"test-{uuid.uuid4().hex[:8]}@host/1"

    def __enter__(self):
        with broker_channel() as channel:
            heartbeat_write(channel, queues=[self.queue], worker=self.worker)
        return self

    def __exit__(self, *exc):
        with broker_channel() as channel:
            heartbeat_clear(channel, queues=[self.queue], worker=self.worker)


class HealthTests(TestCase):
    def test_healthz_answers_without_sign_in(self):
        response = self.client.get("/healthz")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json(), {"status": "ok", "checks": {"process": {"ok": True, "detail": "answering"}}})

    def test_probes_answer_get_and_head_only(self):
        for url in ("/healthz", "/readyz"):
            self.assertEqual(self.client.head(url).status_code, 200)
            self.assertEqual(self.client.post(url).status_code, 405)

    def test_readyz_without_a_worker_is_degraded_but_serves(self):
        with broker_channel() as channel:
            self.assertEqual(workers_alive(channel).get(settings.CELERY_TASK_DEFAULT_QUEUE), None)
        response = self.client.get("/readyz")
        self.assertEqual(response.status_code, 200)
        body = response.json()
        self.assertEqual(body["status"], "degraded")
        self.assertEqual(set(body), {"status", "checks"})
        self.assertEqual(set(body["checks"]), {"database", "broker", "worker", "models"})
        self.assertEqual(
            {name: check["ok"] for name, check in body["checks"].items()},
            {"database": True, "broker": True, "worker": False, "models": True},
        )
        self.assertIn("no worker has beaten", body["checks"]["worker"]["detail"])
        self.assertIn(settings.FACE_ENGINE, body["checks"]["models"]["detail"])

    def test_readyz_with_a_worker_heartbeat_is_ok(self):
        with HeartbeatKey():
            response = self.client.get("/readyz")
        self.assertEqual(response.status_code, 200)
        body = response.json()
        self.assertEqual(body["status"], "ok", body)
        self.assertEqual(
            body["checks"]["worker"],
            {"ok": True, "detail": f"1 worker(s) on queue {settings.CELERY_TASK_DEFAULT_QUEUE!r}"},
        )

    def test_a_heartbeat_for_another_queue_does_not_count(self):
        with HeartbeatKey(queue=f"other-{uuid.uuid4().hex[:6]}"):
            body = self.client.get("/readyz").json()
        self.assertFalse(body["checks"]["worker"]["ok"])

    @override_settings(CELERY_BROKER_URL=DEAD_BROKER)
    def test_readyz_with_the_broker_unreachable_is_down(self):
        with self.assertLogs("portal.ops.health", "WARNING") as logs:
            response = self.client.get("/readyz")
        self.assertEqual(response.status_code, 503)
        body = response.json()
        self.assertEqual(body["status"], "down")
        self.assertEqual(body["checks"]["broker"]["ok"], False)
        self.assertEqual(body["checks"]["broker"]["detail"], "the broker cannot be reached (OperationalError)")
        self.assertFalse(body["checks"]["worker"]["ok"])
        self.assertIn("broker", body["checks"]["worker"]["detail"])
        self.assertTrue(body["checks"]["database"]["ok"])
        # The public answer names no address; the log does, for the operator.
        self.assertNotIn("127.0.0.1", response.content.decode())
        self.assertIn("127.0.0.1:1", "\n".join(logs.output))

    def test_readyz_with_the_database_unreachable_is_down(self):
        from django.db import OperationalError

        with (
            mock.patch("portal.ops.health.connection.cursor", side_effect=OperationalError("no server")),
            self.assertLogs("portal.ops.health", "WARNING"),
        ):
            response = self.client.get("/readyz")
        self.assertEqual(response.status_code, 503)
        self.assertEqual(
            response.json()["checks"]["database"],
            {"ok": False, "detail": "the database cannot be reached (OperationalError)"},
        )

    def test_readyz_with_a_model_file_missing_or_altered_is_down(self):
        altered = Path(tempfile.mkdtemp()) / "yunet.onnx"
        altered.write_bytes(b"not the model")
        models = [ModelFile(str(altered), "0" * 64), ModelFile("/nowhere/model.dat")]
        try:
            with (
                mock.patch("portal.ops.health.engine_model_files", return_value=models),
                self.assertLogs("portal.ops.health", "WARNING"),
            ):
                response = self.client.get("/readyz")
        finally:
            altered.unlink()
        self.assertEqual(response.status_code, 503)
        detail = response.json()["checks"]["models"]["detail"]
        self.assertIn("yunet.onnx wrong SHA-256", detail)
        self.assertIn("model.dat missing", detail)
        self.assertNotIn("/nowhere", detail)

    def test_a_model_file_is_hashed_again_only_when_it_changes(self):
        model_path = Path(tempfile.mkdtemp()) / "sface.onnx"
        model_path.write_bytes(b"weights")
        import hashlib

        model = ModelFile(str(model_path), hashlib.sha256(b"weights").hexdigest())
        try:
            with (
                mock.patch("portal.ops.health.engine_model_files", return_value=[model]),
                mock.patch("portal.ops.health.hashlib.file_digest", wraps=hashlib.file_digest) as digest,
            ):
                self.assertTrue(health.model_files_check().ok)
                self.assertTrue(health.model_files_check().ok)
                self.assertEqual(digest.call_count, 1)
                model_path.write_bytes(b"altered")
                os.utime(model_path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
                with self.assertLogs("portal.ops.health", "WARNING"):
                    self.assertFalse(health.model_files_check().ok)
                self.assertEqual(digest.call_count, 2)
        finally:
            model_path.unlink()

    def test_readyz_checks_the_engine_of_every_gallery(self):
        from tests.factories import agency_make, gallery_make

        gallery_make(owner=agency_make("north"), name="dlib bookings")
        from search.models import Gallery

        # The default engine is SFace; a gallery still searched with dlib needs dlib's models too.
        Gallery.objects.update(engine="dlib-resnet-v1")
        detail = self.client.get("/readyz").json()["checks"]["models"]["detail"]
        self.assertIn("yunet-sface-int8", detail)
        self.assertIn("dlib-resnet-v1", detail)

    def test_which_failures_are_down_and_which_degraded(self):
        every = {"database": True, "broker": True, "worker": True, "models": True}
        self.assertEqual(health.readiness_status(every), "ok")
        self.assertEqual(health.readiness_status(every | {"worker": False}), "degraded")
        for critical in ("database", "broker", "models"):
            self.assertEqual(health.readiness_status(every | {critical: False}), "down")


PRODUCTION_PROBE = """
import json, django
django.setup()
from django.test import Client
client = Client(HTTP_HOST="faces.example.org")
answers = {url: client.get(url).status_code for url in ("/healthz", "/readyz", "/metrics", "/accounts/login/")}
print(json.dumps(answers))
"""


def test_probes_are_exempt_from_the_https_redirect_in_production():
    answers = run_under_production_settings(PRODUCTION_PROBE)
    # Plain HTTP: the probes and the scrape answer (the scrape from 127.0.0.1, allowed by default), the rest
    # is still sent to HTTPS.
    assert answers["/healthz"] == 200
    assert answers["/readyz"] in (200, 503)
    assert answers["/metrics"] == 200
    assert answers["/accounts/login/"] == 301


@pytest.mark.e2e
def test_a_real_worker_beats_while_it_runs_and_logs_json(transactional_db):
    from tests.e2e.conftest import WorkerProcess

    worker = WorkerProcess()
    try:
        deadline = time.monotonic() + 30
        while not (check := health.broker_and_worker_checks()[1]).ok and time.monotonic() < deadline:
            time.sleep(0.5)
        assert check.ok, check.detail
        with broker_channel() as channel:
            names = workers_alive(channel)[settings.CELERY_TASK_DEFAULT_QUEUE]
        assert any(name.startswith(f"{worker.name}/") for name in names), names
    finally:
        worker.stop()
    with broker_channel() as channel:  # a clean stop removes its heartbeat at once
        names = workers_alive(channel).get(settings.CELERY_TASK_DEFAULT_QUEUE, [])
    assert not any(name.startswith(f"{worker.name}/") for name in names), names
    # Celery leaves the root logger to Django: the worker's own records are JSON lines too.
    records = [json.loads(line) for line in worker.log.read_text().splitlines() if line.startswith("{")]
    assert any(
        r["logger"] == "portal.ops.heartbeat" and r["message"].startswith("Worker heartbeat started") for r in records
    ), worker.log.read_text()[-3000:]
    assert any(r["logger"].startswith("celery") for r in records), worker.log.read_text()[-3000:]
