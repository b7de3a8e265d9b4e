"""Read replicas: where a read goes (docs/read-replicas.md).

Every write, and every read outside a replica scope, goes to the primary ("default"): a blanket "reads to a
replica" rule would break read-your-writes, since replication is asynchronous. Inside `replica_reads()` — the
search stage of a job, read-only reports — reads go to one replica that answers and has replayed the primary's
WAL at least up to the LSN the scope needs; when none has, to the primary. Reads inside a transaction on the
primary stay on it (they must see that transaction's own writes).

A replica that cannot be reached is remembered as down for DATABASE_REPLICA_RETRY_SECONDS, so that searches
do not each wait for its connect timeout. Nothing here starts a server or connects at import.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, InterfaceError, OperationalError, connections

logger = logging.getLogger(__name__)

PRIMARY = DEFAULT_DB_ALIAS
REPLICA_PREFIX = "replica_"

Result = TypeVar("Result")


@dataclass
class ReplicaChoice:
    """Where one scope's reads went, and why the replicas passed over were: kept for logs, tests and drills."""

    min_lsn: str | None
    alias: str | None = None  # chosen at the scope's first read, so that a replica has until then to catch up
    skipped: dict[str, str] = field(default_factory=dict)
    reads: Counter = field(default_factory=Counter)  # alias → reads routed there (ORM and search.index)
    fell_back: bool = False  # the replica failed during the scope's reads, which ran again on the primary


# The scope in force in this thread (a Celery worker process runs one job at a time per thread).
_scope: contextvars.ContextVar[ReplicaChoice | None] = contextvars.ContextVar("replica_scope", default=None)
_down_until: dict[str, float] = {}
_lock = threading.Lock()
_turns = itertools.count()
# The last choices of this process, newest last (bounded): "which alias served this search?"
recent_choices: deque[ReplicaChoice] = deque(maxlen=200)


def replica_aliases() -> list[str]:
    """The replica aliases of DATABASES (replica_1, replica_2, … from DATABASE_REPLICA_URLS)."""
    aliases = [alias for alias in settings.DATABASES if alias.startswith(REPLICA_PREFIX)]
    return sorted(aliases, key=lambda alias: (len(alias), alias))


def lsn_value(lsn: str) -> int:
    """A PostgreSQL LSN ('16/B374D848') as a number, to compare two of them."""
    high, _, low = lsn.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def primary_wal_lsn() -> str | None:
    """The primary's current WAL position: every commit made before this call lies at or before it.
    None when no replica is configured (nothing will ever compare with it)."""
    if not replica_aliases():
        return None
    with connections[PRIMARY].cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()::text")
        return cursor.fetchone()[0]


def _in_primary_transaction() -> bool:
    return connections[PRIMARY].in_atomic_block


def read_alias() -> str:
    """The alias a read goes to now: the scope's replica (chosen at its first read), else the primary."""
    choice = _scope.get()
    if choice is None:
        return PRIMARY
    if _in_primary_transaction():
        alias = PRIMARY
    else:
        if choice.alias is None:
            _choose(choice)
        alias = choice.alias
    choice.reads[alias] += 1
    return alias


def mark_down(alias: str, reason: object) -> None:
    """Pass this replica over until DATABASE_REPLICA_RETRY_SECONDS have gone by."""
    with _lock:
        _down_until[alias] = time.time() + settings.DATABASE_REPLICA_RETRY_SECONDS
    with contextlib.suppress(DatabaseError):
        connections[alias].close()
    logger.warning("Replica %s is passed over for %s s: %s", alias, settings.DATABASE_REPLICA_RETRY_SECONDS, reason)


def forget_down() -> None:
    """Try every replica again at the next choice (after a replica is repaired; tests)."""
    with _lock:
        _down_until.clear()


def replica_state(alias: str) -> dict:
    """One replica's own view: in recovery (a standby) or not, and the WAL position it has replayed.
    Raises DatabaseError when it cannot be reached within its connect timeout."""
    database = connections[alias]
    if database.connection is not None and not database.is_usable():
        database.close()  # a connection to a replica that restarted since: connect again
    with database.cursor() as cursor:
        cursor.execute(
            "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,"
            " EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8"
        )
        standby, replay_lsn, since_last_replay = cursor.fetchone()
    return {"standby": standby, "replay_lsn": replay_lsn, "since_last_replay": since_last_replay}


@dataclass(frozen=True)
class ReplicaLag:
    alias: str
    reachable: bool
    standby: bool = False
    lag_bytes: int | None = None  # the primary's WAL position less the replica's replayed one
    lag_seconds: float | None = None  # 0 when caught up, else the time since it last replayed a commit
    error: str = ""  # the error's class, when it cannot be reached


def replica_lag(alias: str) -> ReplicaLag:
    """How far one replica is behind the primary, for /readyz and /metrics."""
    try:
        state = replica_state(alias)
    except DatabaseError as exc:
        logger.warning("Replica %s cannot be reached: %s", alias, exc)
        return ReplicaLag(alias, reachable=False, error=type(exc).__name__)
    if not state["standby"] or state["replay_lsn"] is None:
        return ReplicaLag(alias, reachable=True)
    try:
        with connections[PRIMARY].cursor() as cursor:
            cursor.execute("SELECT pg_current_wal_lsn()::text")
            primary_lsn = cursor.fetchone()[0]
    except DatabaseError:
        return ReplicaLag(alias, reachable=True, standby=True)  # the primary's own check says why
    behind = max(0, lsn_value(primary_lsn) - lsn_value(state["replay_lsn"]))
    seconds = 0.0 if not behind else state["since_last_replay"]
    return ReplicaLag(alias, reachable=True, standby=True, lag_bytes=behind, lag_seconds=seconds)


def _why_not(alias: str, min_lsn: str | None) -> str | None:
    """None when the replica may serve a read needing min_lsn, else the reason it may not."""
    with _lock:
        down_until = _down_until.get(alias, 0.0)
    if down_until > time.time():
        return "down (remembered)"
    try:
        state = replica_state(alias)
    except DatabaseError as exc:
        mark_down(alias, exc)
        return f"cannot be reached ({type(exc).__name__})"
    # A server not in recovery is no standby (promoted, or a primary named by mistake): its data may have
    # parted from the primary's.
    if not state["standby"] or state["replay_lsn"] is None:
        return "not a standby"
    if min_lsn is not None and lsn_value(state["replay_lsn"]) < lsn_value(min_lsn):
        return f"behind: replayed {state['replay_lsn']}, needs {min_lsn}"
    return None


def _choose(choice: ReplicaChoice) -> None:
    """A replica that answers and has replayed choice.min_lsn (the next in turn among them), else the primary."""
    aliases = replica_aliases()
    choice.alias = PRIMARY
    if not aliases:
        return
    start = next(_turns) % len(aliases)
    for alias in aliases[start:] + aliases[:start]:
        reason = _why_not(alias, choice.min_lsn)
        if reason is None:
            choice.alias = alias
            break
        choice.skipped[alias] = reason
    if choice.skipped:
        logger.info("Reads go to %s; passed over: %s", choice.alias, choice.skipped)


@contextlib.contextmanager
def replica_reads(*, min_lsn: str | None = None) -> Iterator[ReplicaChoice]:
    """Route the reads inside to a replica that has replayed min_lsn (default: the primary's WAL position now,
    which every commit made before the call precedes), or to the primary. Writes still go to the primary.
    The replica is chosen at the first read inside; reads inside a transaction on the primary stay there."""
    if min_lsn is None:
        min_lsn = primary_wal_lsn()
    choice = ReplicaChoice(min_lsn=min_lsn, alias=None if replica_aliases() else PRIMARY)
    recent_choices.append(choice)
    token = _scope.set(choice)
    try:
        yield choice
    finally:
        _scope.reset(token)


def replica_read(read: Callable[[], Result], *, min_lsn: str | None = None) -> Result:
    """read() inside replica_reads(); when the chosen replica fails meanwhile (it died, or cancelled a query in
    a conflict with replay), it is passed over and read() runs again on the primary."""
    with replica_reads(min_lsn=min_lsn) as choice:
        try:
            return read()
        except (OperationalError, InterfaceError) as exc:
            if choice.alias in (None, PRIMARY) or not choice.reads[choice.alias]:
                raise  # nothing was read from a replica: the error is the primary's
            choice.fell_back = True
            connections[choice.alias].close()  # a broken connection would fail the check below by itself
            try:
                replica_state(choice.alias)
            except DatabaseError:
                mark_down(choice.alias, exc)
            else:
                logger.warning("A read on replica %s failed (%s); read again on the primary", choice.alias, exc)
    return read()


class ReplicaRouter:
    """DATABASE_ROUTERS entry: reads inside a replica scope go to its replica; everything else to the primary."""

    def db_for_read(self, model, **hints):
        return read_alias()

    def db_for_write(self, model, **hints):
        return PRIMARY

    def allow_relation(self, obj1, obj2, **hints):
        return True  # a replica holds the primary's very rows

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        # Replicas receive the schema by replication; a migration never runs on one.
        return False if db.startswith(REPLICA_PREFIX) else None
