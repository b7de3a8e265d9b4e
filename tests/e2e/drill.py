"""The drills' own servers: a Valkey that a drill may stop or kill (the shared one never is), and Celery beat."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import redis
from django.conf import settings
from django.db import connection

from portal import embedded
from portal.celery import app
from search.workers import stop_process_group

SEARCH_TASK = "search.tasks.search_job_run"


class DrillBroker:
    """A Valkey server of the drill's own: the embedded server's binary and flags, in a temporary folder.

    persistent=False: no append-only file and no snapshot, so a kill loses every message it holds.
    """

    def __init__(self, directory: Path, *, persistent: bool = True):
        self.directory = directory
        self.persistent = persistent
        self.socket = directory / "valkey.sock"
        self.pidfile = directory / "valkey.pid"
        self.url = f"redis+socket://{self.socket}?virtual_host=0"
        self.pid: int | None = None

    def start(self) -> None:
        # The flags of portal/embedded.py _start_valkey: append-only file, fsync every second, no RDB.
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "everysec"] if self.persistent else ["--appendonly", "no"]
        )
        subprocess.run(
            [
                embedded._valkey_binary(),
                "--port",
                "0",
                "--unixsocket",
                str(self.socket),
                "--unixsocketperm",
                "700",
                "--dir",
                str(self.directory),
                "--daemonize",
                "yes",
                "--pidfile",
                str(self.pidfile),
                "--logfile",
                str(self.directory / "valkey.log"),
                *persistence,
                "--save",
                "",
            ],
            check=True,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.client().ping() and self.pidfile.exists():
                    break
            except (redis.ConnectionError, FileNotFoundError):
                pass
            assert time.monotonic() < deadline, (self.directory / "valkey.log").read_text()
            time.sleep(0.05)
        self.pid = int(self.pidfile.read_text())

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """SIGTERM is what `make stop` does to the embedded server (it writes the append-only file out);
        SIGKILL is a crash, an out-of-memory kill or a power cut: nothing more is written."""
        if self.pid is None:
            return
        os.kill(self.pid, sig)
        deadline = time.monotonic() + 30
        while embedded._pid_alive(self.pid):
            assert time.monotonic() < deadline, "the drill's Valkey did not stop"
            time.sleep(0.05)
        self.pidfile.unlink(missing_ok=True)  # a killed server leaves it: start() waits for the new one
        self.pid = None

    def client(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.socket), socket_timeout=5)

    def messages(self, client: redis.Redis | None = None) -> dict:
        """Search messages held: waiting in the queue (every priority list) and delivered but not acknowledged.

        Beat's sweeper messages share the queue and are left out.
        """
        client = client or self.client()
        unacked = [json.loads(raw)[0] for raw in client.hvals("unacked")]  # [message, exchange, routing key]
        return {
            state: sum(message["headers"]["task"] == SEARCH_TASK for message in messages)
            for state, messages in (("waiting", self._waiting(client)), ("unacked", unacked))
        }

    def waiting_job_ids(self) -> list[int]:
        """The job id of every search message waiting in the queue, once per message."""
        return sorted(
            json.loads(base64.b64decode(message["body"]))[0][0]
            for message in self._waiting(self.client())
            if message["headers"]["task"] == SEARCH_TASK
        )

    @staticmethod
    def _waiting(client: redis.Redis) -> list[dict]:
        queue = settings.CELERY_TASK_DEFAULT_QUEUE.encode()  # and its priority lists, "<queue>\x06\x16<n>"
        return [
            json.loads(raw)
            for key in client.keys(queue + b"*")
            if client.type(key) == b"list"
            for raw in client.lrange(key, 0, -1)
        ]


@contextmanager
def drill_broker_running(prefix: str, *, persistent: bool = True):
    """A drill's own Valkey, started, with this process's producer on it; stopped and removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))  # short: a unix socket path has ~100 bytes
    broker = DrillBroker(directory, persistent=persistent)
    broker.start()
    try:
        with producer_on(broker.url):
            yield broker
    finally:
        broker.stop()
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def producer_on(broker_url: str):
    """The test process's Celery app publishes (and inspects workers) on another broker for a while.

    The app caches its connection and producer pools on first use, so they are set aside and restored.
    """
    saved = app.conf.broker_url, app._pool, app.amqp._producer_pool
    app.conf.broker_url, app._pool, app.amqp._producer_pool = broker_url, None, None
    try:
        yield
    finally:
        if app._pool is not None:
            app._pool.force_close_all()
        app.conf.broker_url, app._pool, app.amqp._producer_pool = saved


class BeatProcess:
    """Celery beat as production runs it: it sends the stale-job sweeper every SEARCH_SWEEP_SECONDS."""

    def __init__(self, broker: DrillBroker, timeouts: dict):
        self.log = broker.directory / "beat.log"
        env = (
            os.environ
            | {
                "DATABASE_NAME": connection.settings_dict["NAME"],
                "CELERY_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
                "CELERY_BROKER_URL": broker.url,
            }
            | {k: str(v) for k, v in timeouts.items()}
        )
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "portal",
                "beat",
                "--loglevel",
                "INFO",
                "-s",
                str(broker.directory / "celerybeat-schedule"),
            ],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        stop_process_group(self.process)
