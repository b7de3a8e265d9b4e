"""A real Celery worker process on the real broker, reading the test database."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from portal.celery import app
from search.workers import celery_worker_command, stop_process_group, worker_consuming_search_queue


class WorkerProcess:
    def __init__(self, extra_env: dict | None = None):
        self.name = f"e2e-{uuid.uuid4().hex[:8]}@{os.uname().nodename}"
        env = (
            os.environ
            | {
                "DATABASE_NAME": connection.settings_dict["NAME"],
                "MEDIA_ROOT": str(settings.MEDIA_ROOT),
                "CELERY_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
            }
            | {k: str(v) for k, v in (extra_env or {}).items()}
        )
        self.log = Path(settings.MEDIA_ROOT).parent / f"{self.name.split('@')[0]}.log"
        self.process = subprocess.Popen(
            celery_worker_command(name=self.name) + ["--without-gossip", "--without-mingle"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a drill can kill the pool child too
        )
        deadline = time.monotonic() + 90
        while not worker_consuming_search_queue(worker_name=self.name, timeout=1.0):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"worker did not start:\n{self.log.read_text()[-3000:]}")

    def kill(self, sig=signal.SIGKILL) -> None:
        os.killpg(self.process.pid, sig)
        self.process.wait(30)

    def stop(self) -> None:
        stop_process_group(self.process)


@pytest.fixture(scope="session")
def clean_test_broker():
    """An empty test broker database: no message of an earlier run reaches this run's worker."""
    with app.connection_for_write() as conn:
        conn.default_channel.client.flushdb()


@pytest.fixture
def start_worker(transactional_db, clean_test_broker):
    workers: list[WorkerProcess] = []

    def start(**extra_env) -> WorkerProcess:
        worker = WorkerProcess(extra_env)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture(autouse=True)
def offense_categories(transactional_db):
    """The categories a migration adds: a transactional test's flush removes them after each test."""
    import importlib

    from search.models import OffenseCategory

    migration = importlib.import_module("search.migrations.0004_offense_categories")
    for name in migration.CATEGORIES:
        OffenseCategory.objects.get_or_create(name=name, defaults={"is_missing_person": name == "Missing person"})


@pytest.fixture
def browser_page():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(settings.CHROMIUM_PATH):
        pytest.fail(
            f"No browser at {settings.CHROMIUM_PATH} (CHROMIUM_PATH): run scripts/install.sh, which installs "
            "Debian's chromium."
        )
    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test are still sync.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=settings.CHROMIUM_PATH,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-sync",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        yield page
        browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def demo_with_worker(start_worker) -> dict:
    """The demo of `make run` (agency, users, gallery of the shared photos) and a worker. Made before
    the browser starts: ORM calls inside Playwright's event loop would open a connection that outlives
    the test."""
    call_command("seed_demo", stdout=io.StringIO(), stderr=io.StringIO())
    start_worker()
    return json.loads(Path(settings.DEMO_LOGINS_FILE).read_text())
