"""Liveness and readiness: plain functions that the views (portal/ops_views.py) only turn into JSON.

Readiness is "down" (HTTP 503) when the web process cannot do its work: the database, the broker, a
face engine's model files or (with media in an object store) the bucket fail. It is "degraded" (HTTP 200)
when only the worker heartbeat is missing: uploads still succeed and wait queued, and taking web processes
out of a load balancer would not bring a worker back; the metrics (portal_workers) and the "degraded" status
are what to alert on. A read replica that does not answer, is no standby or lags too far is "degraded" too:
searches then read the primary.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import asdict, dataclass

from django.conf import settings
from django.db import DatabaseError, connection

from portal import db_routing
from portal.object_storage import object_storage_readiness
from portal.ops.broker import broker_channel
from portal.ops.heartbeat import workers_alive
from search import selectors
from search.faces import EngineNotAvailable, ModelFile, engine_model_files

logger = logging.getLogger(__name__)

OK, DEGRADED, DOWN = "ok", "degraded", "down"
# The checks whose failure makes the portal "down"; any other failing check makes it "degraded".
CRITICAL_CHECKS = ("database", "broker", "models", "object_storage")


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str


def liveness() -> dict:
    """The process answers: nothing else is looked at."""
    return {"status": OK, "checks": {"process": asdict(Check(True, "answering"))}}


def readiness() -> dict:
    """{"status": "ok"|"degraded"|"down", "checks": {name: {"ok", "detail"}}}."""
    checks = {"database": database_check()}
    checks["broker"], checks["worker"] = broker_and_worker_checks()
    checks["models"] = model_files_check(database_ok=checks["database"].ok)
    if (store := object_storage_readiness()) is not None:  # media in an object store: it must answer
        checks["object_storage"] = Check(*store)
    for alias in db_routing.replica_aliases():
        checks[alias] = replica_check(alias)
    return {
        "status": readiness_status({name: check.ok for name, check in checks.items()}),
        "checks": {name: asdict(check) for name, check in checks.items()},
    }


def readiness_status(results: dict[str, bool]) -> str:
    if not all(ok for name, ok in results.items() if name in CRITICAL_CHECKS):
        return DOWN
    return OK if all(results.values()) else DEGRADED


def _unreachable(what: str, exc: Exception) -> Check:
    # The answer is public: the error's class only; its text (host names, ports) goes to the log.
    logger.warning("Readiness: %s cannot be reached: %s", what, exc)
    return Check(False, f"{what} cannot be reached ({type(exc).__name__})")


def database_check() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return _unreachable("the database", exc)
    return Check(True, "answers")


def replica_check(alias: str) -> Check:
    """One read replica: it answers, is a standby, and how far its replay is behind the primary."""
    lag = db_routing.replica_lag(alias)
    if not lag.reachable:
        return Check(False, f"{alias} cannot be reached ({lag.error}): searches use the primary")
    if not lag.standby:
        return Check(False, f"{alias} is not a standby (not in recovery): searches use the primary")
    if lag.lag_bytes is None:
        return Check(True, f"{alias} answers as a standby; its lag is unknown while the primary cannot be read")
    behind = f"{lag.lag_bytes} bytes" + ("" if lag.lag_seconds is None else f", {lag.lag_seconds:.1f} s")
    if lag.lag_seconds is not None and lag.lag_seconds > settings.DATABASE_REPLICA_MAX_LAG_SECONDS:
        return Check(
            False,
            f"{alias} replays {behind} behind the primary (over {settings.DATABASE_REPLICA_MAX_LAG_SECONDS:g} s):"
            " searches use the primary until it catches up",
        )
    return Check(True, f"{alias} answers, replays {behind} behind the primary")


def broker_and_worker_checks() -> tuple[Check, Check]:
    """The broker answers a PING; some worker consuming the search queue has a live heartbeat in it."""
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    try:
        with broker_channel() as channel:
            channel.client.ping()
            workers = workers_alive(channel).get(queue, [])
    except Exception as exc:  # noqa: BLE001 - kombu, redis and socket errors all mean "unreachable"
        return (
            _unreachable("the broker", exc),
            Check(False, "unknown: the broker, which holds the workers' heartbeats, cannot be reached"),
        )
    if not workers:
        return (
            Check(True, "answers"),
            Check(False, f"no worker has beaten in the last {settings.SEARCH_STALE_SECONDS} s on queue {queue!r}"),
        )
    return Check(True, "answers"), Check(True, f"{len(workers)} worker(s) on queue {queue!r}")


# (path, size, modification time) → SHA-256, so that a probe hashes a model file only when it changed.
_digests: dict[tuple[str, int, int], str] = {}


def _model_file_problem(model: ModelFile) -> str | None:
    try:
        status = os.stat(model.path)
    except OSError:
        return "missing"
    if model.sha256 is None:
        return None
    key = (model.path, status.st_size, status.st_mtime_ns)
    if key not in _digests:
        with open(model.path, "rb") as stored:
            _digests[key] = hashlib.file_digest(stored, "sha256").hexdigest()
    return None if _digests[key] == model.sha256 else "wrong SHA-256"


def model_files_check(*, database_ok: bool = True) -> Check:
    """The model files of the engine new searches use and of every engine a gallery uses exist (and have
    their SHA-256, where the engine checks one); no model is loaded. The answer names files, not paths."""
    engines = {settings.FACE_ENGINE}
    if database_ok:
        try:
            engines |= selectors.gallery_engines_in_use()
        except DatabaseError:
            pass  # the database check says so; the configured engine is checked still
    problems, files = [], 0
    for engine in sorted(engines):
        try:
            models = engine_model_files(engine)
        except EngineNotAvailable as exc:
            logger.warning("Readiness: engine %s: %s", engine, exc)
            problems.append(f"{engine}: not available")
            continue
        files += len(models)
        for model in models:
            if problem := _model_file_problem(model):
                logger.warning("Readiness: engine %s: model file %s: %s", engine, model.path, problem)
                problems.append(f"{engine}: {os.path.basename(model.path)} {problem}")
    if problems:
        return Check(False, "; ".join(problems))
    return Check(True, f"{files} model files present for {', '.join(sorted(engines))}")
