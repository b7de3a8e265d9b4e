"""Celery workers of the search queue: is one consuming it, and a temporary one for a single command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.conf import settings

from portal.celery import app


def worker_consuming_search_queue(*, worker_name: str | None = None, timeout: float = 1.5) -> bool:
    """Whether a worker (that one, if named) answers now that it consumes CELERY_TASK_DEFAULT_QUEUE.

    A live answer over the broker: unlike the heartbeat keys of portal/ops/heartbeat.py, which a killed
    worker leaves behind until they expire, a worker that is gone does not reply.
    """
    destination = [worker_name] if worker_name else None
    replies = app.control.inspect(destination=destination, timeout=timeout).active_queues() or {}
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    return any(q.get("name") == queue for queues in replies.values() for q in queues)


def celery_worker_command(
    *, name: str, pool: str = "prefork", concurrency: int = 1, loglevel: str = "INFO", queue: str | None = None
) -> list[str]:
    """The command line of a Celery worker of this portal on the search queue (`queue`: another one)."""
    return [sys.executable, "-m", "celery", "-A", "portal", "worker", "--pool", pool,
            "--concurrency", str(concurrency), "--loglevel", loglevel,
            "-Q", queue or settings.CELERY_TASK_DEFAULT_QUEUE, "-n", name]  # fmt: skip


class TemporaryWorker:
    """A worker process that lives for one command, for when no worker is running."""

    def __init__(self, startup_timeout: float = 90.0):
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None

    def __enter__(self):
        self.process = subprocess.Popen(
            celery_worker_command(name=f"temporary-{os.getpid()}@%h", pool="solo", loglevel="WARNING")
            + ["--without-gossip", "--without-mingle"],
            cwd=settings.BASE_DIR,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + self.startup_timeout
        while not worker_consuming_search_queue():
            if self.process.poll() is not None:
                raise RuntimeError("The worker could not start: " + self.process.stderr.read().decode()[-2000:])
            if time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError("The worker did not start in time.")
        return self

    def __exit__(self, *exc):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM to a process started in its own session (and so to its children), SIGKILL after 30 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
