"""Prometheus metrics: the figures of the whole portal, read from the database and the broker at scrape
time (so any web process of any host gives the same, cluster-wide answer), plus the answering process's
own default metrics (CPU, memory, file descriptors, garbage collection).

Access: from the addresses of METRICS_ALLOWED, or with "Authorization: Bearer <METRICS_TOKEN>".
"""

from __future__ import annotations

import functools
import hmac
import logging
import threading
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from portal import db_routing
from portal.client_address import address_in, client_address, parse_networks
from portal.ops.broker import broker_channel, queue_depths
from portal.ops.heartbeat import workers_alive
from search import selectors

logger = logging.getLogger(__name__)

# The stages a search times into SearchJob.stage_ms (search/pipeline.py, search/photo_faces.py).
STAGES = ("decode", "detect", "embed", "search", "render")
STAGE_BUCKETS_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


# A finished job's timings never change, and a job's finish commits well within this (the task's hard time
# limit is 120 s): jobs finished longer ago than this are settled.
SETTLE_SECONDS = 600
# How far the settled part may fall behind before it is brought forward (bounds the per-scrape read).
ADVANCE_SECONDS = 300


class SettledStageHistogram:
    """The stage histogram of every finished job, without reading every job at every scrape: the settled part
    (jobs finished before a moving bound) is read once per process and then only extended; a scrape reads the
    jobs finished since that bound. Every process of every host computes the same figures from the database."""

    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self._settled_before = None
        self._settled = None

    def _read(self, **finished):
        return selectors.search_stage_histogram(
            stages=STAGES, bounds_ms=tuple(bound * 1000 for bound in STAGE_BUCKETS_SECONDS), **finished
        )

    @staticmethod
    def _add(first: dict | None, second: dict) -> dict:
        if first is None:
            return second
        return {
            stage: {
                "count": first[stage]["count"] + figures["count"],
                "sum": first[stage]["sum"] + figures["sum"],
                "buckets": [a + b for a, b in zip(first[stage]["buckets"], figures["buckets"], strict=True)],
            }
            for stage, figures in second.items()
        }

    def figures(self) -> dict:
        bound = timezone.now() - timedelta(seconds=SETTLE_SECONDS)
        with self._lock:
            if self._settled_before is None or (bound - self._settled_before).total_seconds() > ADVANCE_SECONDS:
                self._settled = self._add(
                    self._settled, self._read(finished_from=self._settled_before, finished_before=bound)
                )
                self._settled_before = bound
            settled, settled_before = self._settled, self._settled_before
        return self._add(settled, self._read(finished_from=settled_before))


stage_histogram = SettledStageHistogram()


def metrics_access_allowed(request) -> bool:
    """From an allowed address (portal.client_address: TRUSTED_PROXIES honoured), or with the bearer token."""
    if address_in(client_address(request), parse_networks(settings.METRICS_ALLOWED)):
        return True
    token = settings.METRICS_TOKEN
    scheme, _, offered = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(offered.strip().encode(), token.encode())


class PortalCollector:
    """Searches by status, stage durations, the oldest queued search, the broker's queue and the workers."""

    def describe(self):
        return []  # nothing read at registration: every figure is read at scrape time

    def collect(self):
        up = GaugeMetricFamily(
            "portal_dependency_up", "Whether the scrape could read the dependency (1) or not (0)", labels=["dependency"]
        )
        try:
            database = list(self._database())
        except DatabaseError as exc:
            logger.warning("Metrics: the database cannot be read: %s", exc)
            database = []
        up.add_metric(["database"], 1 if database else 0)
        yield from database
        try:
            broker = list(self._broker())
        except Exception as exc:  # noqa: BLE001 - kombu, redis and socket errors all mean "unreachable"
            logger.warning("Metrics: the broker cannot be read: %s", exc)
            broker = []
        up.add_metric(["broker"], 1 if broker else 0)
        yield from broker
        yield up
        yield from self._replicas()

    def _replicas(self):
        aliases = db_routing.replica_aliases()
        if not aliases:
            return
        replica_up = GaugeMetricFamily(
            "portal_replica_up", "Whether the read replica answers as a standby (1) or not (0)", labels=["replica"]
        )
        lag_bytes = GaugeMetricFamily(
            "portal_replica_lag_bytes", "WAL the replica has yet to replay, in bytes", labels=["replica"]
        )
        lag_seconds = GaugeMetricFamily(
            "portal_replica_lag_seconds",
            "0 when the replica has replayed all; else the time since it last replayed a commit",
            labels=["replica"],
        )
        for alias in aliases:
            lag = db_routing.replica_lag(alias)
            replica_up.add_metric([alias], 1 if lag.standby else 0)
            if lag.lag_bytes is not None:
                lag_bytes.add_metric([alias], lag.lag_bytes)
            if lag.lag_seconds is not None:
                lag_seconds.add_metric([alias], lag.lag_seconds)
        yield replica_up
        yield lag_bytes
        yield lag_seconds

    def _database(self):
        jobs = GaugeMetricFamily(
            "portal_search_jobs", "Search jobs in each status (done and failed only grow)", labels=["status"]
        )
        for status, count in selectors.search_job_status_counts().items():
            jobs.add_metric([status], count)
        yield jobs

        oldest = selectors.search_job_oldest_queued_at()
        yield GaugeMetricFamily(
            "portal_search_oldest_queued_age_seconds",
            "How long the longest-waiting queued search has waited (0 when none waits)",
            value=(timezone.now() - oldest).total_seconds() if oldest else 0.0,
        )

        stages = HistogramMetricFamily(
            "portal_search_stage_seconds",
            "Time of each stage of the searches that ran it (from SearchJob.stage_ms)",
            labels=["stage"],
        )
        for stage, figures in stage_histogram.figures().items():
            buckets = [
                (repr(bound), count) for bound, count in zip(STAGE_BUCKETS_SECONDS, figures["buckets"], strict=True)
            ]
            stages.add_metric([stage], buckets + [("+Inf", figures["count"])], figures["sum"] / 1000)
        yield stages

    def _broker(self):
        queue = settings.CELERY_TASK_DEFAULT_QUEUE
        with broker_channel() as channel:
            depths = queue_depths(channel, queue)
            alive = workers_alive(channel)
        messages = GaugeMetricFamily(
            "portal_broker_queue_messages",
            "Messages waiting on the broker in the search queue, per priority list (0 is taken first)",
            labels=["queue", "priority"],
        )
        for priority, count in depths.items():
            messages.add_metric([queue, str(priority)], count)
        yield messages
        workers = GaugeMetricFamily(
            "portal_workers", "Workers with a live heartbeat, per queue they consume", labels=["queue"]
        )
        for name in sorted(set(alive) | {queue}):
            workers.add_metric([name], len(alive.get(name, [])))
        yield workers


@functools.cache
def registry() -> CollectorRegistry:
    """Built at the first scrape, not at import."""
    portal_registry = CollectorRegistry()
    ProcessCollector(registry=portal_registry)
    PlatformCollector(registry=portal_registry)
    GCCollector(registry=portal_registry)
    portal_registry.register(PortalCollector())
    return portal_registry


def metrics_text() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    return generate_latest(registry()), CONTENT_TYPE_LATEST
