"""The multi-host drill's machines: a web process, Celery workers and beat, each a process of its own in a
directory of its own, and the REST API client that officers use against the web process.

Each "host" is an empty temporary directory holding its working directory, PORTAL_VAR_DIR, MEDIA_ROOT and
TMPDIR: two hosts share no file. What a deployment sets on every host (the database, its replicas, the
broker, the object store, the secret key) comes from one environment, `cluster_env`; a host adds only its
own directories. Importing this module starts nothing.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import requests
from django.conf import settings

from search.workers import celery_worker_command, stop_process_group

# What the test process itself was given by tests/testenv.py (its own media, static, backup and demo folders,
# and the defaults that let tests search without stating a purpose): never a cluster host's.
TEST_PROCESS_ONLY = (
    "MEDIA_ROOT",
    "STATIC_ROOT",
    "BACKUP_DIR",
    "DEMO_LOGINS_FILE",
    "PORTAL_VAR_DIR",
    "DATABASE_NAME",
    "DATABASE_URL",
    "DATABASE_REPLICA_URLS",
    "CELERY_BROKER_URL",
    "REDIS_URL",
    "CACHE_URL",
    "SEARCH_DEFAULT_PURPOSE",
    "SEARCH_DEFAULT_JUSTIFICATION",
    "DJANGO_SECRET_KEY",
    "DJANGO_SECRET_KEY_FILE",
    "DATABASE_CONN_MAX_AGE",
)


def database_url(settings_dict: dict) -> str:
    """The postgresql:// URL of a Django database connection (a unix-socket host goes in ?host=)."""
    user = quote(settings_dict.get("USER") or "")
    password = settings_dict.get("PASSWORD") or ""
    credentials = f"{user}:{quote(password)}@" if password else f"{user}@"
    name = quote(settings_dict["NAME"])
    host, port = settings_dict.get("HOST") or "", str(settings_dict.get("PORT") or "")
    port = f":{port}" if port else ""
    if host.startswith("/"):
        return f"postgresql://{credentials}{port}/{name}?host={quote(host)}"
    return f"postgresql://{credentials}{host}{port}/{name}"


def cluster_env(
    *, database_url: str, broker_url: str, cache_url: str, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment every host of the drill shares: what a deployment sets on each of its machines."""
    env = {name: value for name, value in os.environ.items() if name not in TEST_PROCESS_ONLY}
    return (
        env
        | {
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            # The code is installed on every host; each process runs from its own directory.
            "PYTHONPATH": str(settings.BASE_DIR),
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": broker_url,
            "CACHE_URL": cache_url,
            "CELERY_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
            # One key for the deployment: a session or a signed value made by one web host is read by another.
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "PORTAL_LOG_FORMAT": "json",
            "PORTAL_LOG_LEVEL": "INFO",
        }
        | {name: str(value) for name, value in (extra or {}).items()}
    )


class Host:
    """One machine of the drill: an empty directory with its working directory, var, media and tmp."""

    def __init__(self, root: Path, name: str, *, media_root: Path | None = None):
        """media_root: a folder outside the host that several hosts share (one box), instead of its own."""
        self.name = name
        self.directory = root / name
        self.var_dir = self.directory / "var"
        self.media_root = media_root or self.directory / "media"
        self.tmp_dir = self.directory / "tmp"
        for directory in (self.directory, self.var_dir, self.media_root, self.tmp_dir):
            directory.mkdir(parents=True, exist_ok=True)

    def env(self, shared: dict) -> dict[str, str]:
        return {name: str(value) for name, value in shared.items()} | {
            "PORTAL_VAR_DIR": str(self.var_dir),
            "MEDIA_ROOT": str(self.media_root),
            "STATIC_ROOT": str(self.var_dir / "static"),
            "BACKUP_DIR": str(self.var_dir / "backups"),
            "DEMO_LOGINS_FILE": str(self.var_dir / "demo-logins.json"),
            "TMPDIR": str(self.tmp_dir),
        }

    def media_files(self) -> list[str]:
        """Every file under the host's MEDIA_ROOT (relative names)."""
        return sorted(str(p.relative_to(self.media_root)) for p in self.media_root.rglob("*") if p.is_file())

    def image_files(self) -> list[str]:
        """Every photo-like file anywhere on the host (media, var, tmp, working directory)."""
        suffixes = {".jpg", ".jpeg", ".png", ".webp", ".pdf"}
        return sorted(
            str(p.relative_to(self.directory))
            for p in self.directory.rglob("*")
            if p.is_file() and p.suffix.lower() in suffixes
        )


class HostProcess:
    """A process started on a host, in its own process group (a kill takes its children too)."""

    def __init__(self, host: Host, role: str, command: list[str], env: dict[str, str]):
        self.host, self.role = host, role
        self.log = host.directory / f"{role}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=host.directory,
                env=host.env(env),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL to the whole group (a prefork worker's pool child dies with it): a host lost."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        stop_process_group(self.process)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def log_records(self) -> list[dict]:
        """The JSON log lines the process wrote (other lines, e.g. Celery's banner, are skipped)."""
        records = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return records


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WebProcess(HostProcess):
    """gunicorn serving portal.wsgi on a free loopback port, as `make run` starts it."""

    def __init__(self, host: Host, env: dict[str, str], *, workers: int = 2, threads: int = 4):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "gunicorn", "portal.wsgi", "--workers", str(workers),
                   "--threads", str(threads), "--bind", f"127.0.0.1:{self.port}", "--access-logfile", "-",
                   "--graceful-timeout", "10"]  # fmt: skip
        super().__init__(host, "web", command, env)

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"the web process stopped:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the web process did not answer within {timeout} s:\n{self.log_tail()}")


class WorkerHostProcess(HostProcess):
    """A Celery worker of the search queue (prefork, one child), named after its host."""

    def __init__(self, host: Host, env: dict[str, str], *, role: str = "worker"):
        self.name = f"{host.name}-{secrets.token_hex(3)}@drill"
        command = celery_worker_command(name=self.name) + ["--without-gossip", "--without-mingle"]
        super().__init__(host, role, command, env)

    def jobs_finished(self) -> list[int]:
        """The search jobs this worker ran to their end, from its log."""
        return [
            record["job_id"]
            for record in self.log_records()
            if record.get("logger") == "search.pipeline" and "ran to its end" in record.get("message", "")
        ]


class BeatHostProcess(HostProcess):
    """Celery beat: exactly one in a deployment; it sends the stale-job sweeper every SEARCH_SWEEP_SECONDS."""

    def __init__(self, host: Host, env: dict[str, str]):
        command = [sys.executable, "-m", "celery", "-A", "portal", "beat", "--loglevel", "INFO",
                   "-s", str(host.var_dir / "celerybeat-schedule")]  # fmt: skip
        super().__init__(host, "beat", command, env)


class ApiError(AssertionError):
    pass


class ApiClient:
    """An officer's (or agency admin's) client of the REST API, authenticated by a personal token."""

    def __init__(self, base_url: str, token: str):
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def _answer(self, response: requests.Response, expected: int) -> dict:
        if response.status_code != expected:
            raise ApiError(f"{response.request.method} {response.url}: {response.status_code} {response.text[:500]}")
        return response.json()

    def get(self, path: str) -> dict:
        return self._answer(self.session.get(self.base_url + path, timeout=30), 200)

    def case_create(self, *, number: str, title: str) -> dict:
        response = self.session.post(
            f"{self.base_url}/api/v1/cases/", json={"number": number, "title": title}, timeout=30
        )
        return self._answer(response, 201)

    def search_submit(self, searches_url: str, photo: Path, *, purpose: str, justification: str) -> dict:
        with photo.open("rb") as data:
            response = self.session.post(
                self.base_url + searches_url,
                files={"photo": (photo.name, data, "image/jpeg")},
                data={"purpose": purpose, "justification": justification},
                timeout=60,
            )
        return self._answer(response, 202)

    def gallery_enrol(self, gallery_code: str, *, display_name: str, photos: list[Path]) -> dict:
        files = [("photos", (photo.name, photo.read_bytes(), "image/jpeg")) for photo in photos]
        response = self.session.post(
            f"{self.base_url}/api/v1/galleries/{gallery_code}/photos/",
            files=files,
            data={"display_name": display_name},
            timeout=120,
        )
        return self._answer(response, 200)
