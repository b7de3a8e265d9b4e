"""Each Celery worker says that it is alive: every SEARCH_HEARTBEAT_SECONDS it writes, into the broker, one
key per queue it consumes, expiring after SEARCH_STALE_SECONDS. Readiness and the metrics count those keys.

One key per worker process (its node name and pid), so several workers on several hosts count separately;
a worker that stops cleanly removes its keys, one that is killed drops out when they expire. The beat runs
on a thread of its own, so a long search on a solo pool does not silence it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time

from celery import bootsteps
from django.conf import settings

from portal.ops.broker import broker_channel

logger = logging.getLogger(__name__)

KEY_PREFIX = "portal:worker-heartbeat"


def heartbeat_key(*, queue: str, worker: str) -> str:
    return f"{KEY_PREFIX}:{queue}:{worker}"


def heartbeat_write(channel, *, queues: list[str], worker: str) -> None:
    """Say, for SEARCH_STALE_SECONDS, that this worker consumes these queues."""
    pipeline = channel.client.pipeline()
    for queue in queues:
        value = json.dumps({"queue": queue, "worker": worker, "at": time.time()})
        pipeline.set(heartbeat_key(queue=queue, worker=worker), value, ex=settings.SEARCH_STALE_SECONDS)
    pipeline.execute()


def heartbeat_clear(channel, *, queues: list[str], worker: str) -> None:
    channel.client.delete(*[heartbeat_key(queue=queue, worker=worker) for queue in queues])


def workers_alive(channel) -> dict[str, list[str]]:
    """Queue → the workers whose heartbeat has not expired, from every host."""
    keys = list(channel.client.scan_iter(match=f"{KEY_PREFIX}:*", count=500))
    alive: dict[str, list[str]] = {}
    for value in channel.client.mget(keys) if keys else []:
        if value is None:
            continue  # expired between the scan and the read
        beat = json.loads(value)
        alive.setdefault(beat["queue"], []).append(beat["worker"])
    return {queue: sorted(workers) for queue, workers in alive.items()}


class WorkerHeartbeat(bootsteps.StartStopStep):
    """The worker bootstep that beats (portal/celery.py adds it to every worker)."""

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.queues: list[str] = []
        self.name = ""

    def start(self, worker) -> None:
        self.queues = sorted(worker.app.amqp.queues.consume_from or {})
        self.name = f"{worker.hostname}/{os.getpid()}"
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="worker-heartbeat", daemon=True)
        self._thread.start()
        logger.info("Worker heartbeat started for queues %s", ", ".join(self.queues))

    def stop(self, worker) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=10)
        self._thread = None
        try:
            with broker_channel() as channel:
                heartbeat_clear(channel, queues=self.queues, worker=self.name)
        except Exception as exc:  # noqa: BLE001 - the keys expire by themselves
            logger.warning("Could not remove the worker heartbeat: %s", exc)

    terminate = stop

    def _run(self) -> None:
        failing = False
        while True:
            try:
                with broker_channel() as channel:
                    heartbeat_write(channel, queues=self.queues, worker=self.name)
                if failing:
                    logger.warning("Worker heartbeat written again")
                failing = False
            except Exception as exc:  # noqa: BLE001 - the broker is away: say so once, keep trying
                if not failing:
                    logger.warning("Worker heartbeat could not be written (the broker cannot be reached): %s", exc)
                failing = True
            if self._stop.wait(settings.SEARCH_HEARTBEAT_SECONDS):
                return
