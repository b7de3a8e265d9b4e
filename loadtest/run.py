"""make load: a bounded load test on loopback, never part of the test suite.

Two agencies of ten officers each sign in (password + TOTP), upload small real probe photos and poll
their searches, through gunicorn and a Celery worker, in a throw-away database (portal_load) on the
running PostgreSQL, its own broker database, queue and media folder. One Locust run of fixed length
in three windows: a warm-up (sign-in, not measured), the baseline, then the same load while one agency
also bursts; then the queue must drain. Prints a Markdown report and exits 1 when a limit is missed.
Stops everything it started and drops the database (LOAD_KEEP=1 keeps it and the logs).

Measured:
- upload→enqueue: the upload view enqueues the search (on commit of the probe's transaction) before
  it answers, so an upload request's duration bounds the time from the request to the task being on
  the broker. Server: gunicorn's request time from its access log (the limits apply to it). Client:
  Locust's response time over loopback, which adds the wait for a free web worker and Locust's own
  scheduling on the same CPUs.
- queue wait: SearchJob.created_at (written in the upload's transaction, just before the enqueue) to
  started_at (a worker claimed it), from the database.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
LOAD_DATABASE = os.environ.get("LOAD_DATABASE_NAME", "portal_load")
RUN_SECONDS = int(os.environ.get("LOAD_SECONDS", "60"))
WARMUP_SECONDS = int(os.environ.get("LOAD_WARMUP_SECONDS", "30"))
LOCUST_START_SECONDS = 2
DRAIN_LIMIT_SECONDS = int(os.environ.get("LOAD_DRAIN_LIMIT_SECONDS", "300"))
OFFICERS_PER_AGENCY = 10
AGENCIES = {"north": "North Load Police", "south": "South Load Constabulary"}
BURST_AGENCY, OTHER_AGENCY = "north", "south"
WEB_WORKERS = 4  # the README's production command
WORKER_CONCURRENCY = 2
# The web server, the worker and Locust share two cores here; in production each has its own host. The
# worker and Locust run niced, so that the web server's figures are its own and not the others' CPU.
NICE = 10
PROBE_MAX_BYTES = 80_000  # small real photos: the searches stay short, the queue is what is tested
GALLERY_PEOPLE = 6
LIMITS = {"error_rate": 0.01, "upload_p95_ms": 800.0, "other_upload_p95_increase": 0.20}

MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="portal-load-media-"))
WORK_DIR = Path(tempfile.mkdtemp(prefix="portal-load-"))
os.environ.update(
    {
        "DATABASE_NAME": LOAD_DATABASE,
        "MEDIA_ROOT": str(MEDIA_ROOT),
        "CELERY_QUEUE": os.environ.get("LOAD_CELERY_QUEUE", "search-load"),
        "PORTAL_BROKER_DB": os.environ.get("LOAD_BROKER_DB", "6"),
        # Twenty officers sign in from one loopback address; the per-user upload limit would refuse the
        # bursting officers' batches. Both are raised for this run only.
        "SIGN_INS_PER_MINUTE": os.environ.get("SIGN_INS_PER_MINUTE", "1000"),
        "UPLOADS_PER_MINUTE": os.environ.get("UPLOADS_PER_MINUTE", "200"),
        "DJANGO_SETTINGS_MODULE": "portal.settings",
    }
)
os.environ.pop("DJANGO_DEBUG", None)  # production-like: no debug pages, no query log in memory

from portal import embedded  # noqa: E402

embedded.ensure_services()


def _admin_execute(sql: str) -> None:
    import psycopg

    admin_url = embedded.database_url().replace(f"/{embedded.DATABASE_NAME}?", "/postgres?")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql)


import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from accounts.models import Role  # noqa: E402
from accounts.services import agency_create, user_create_with_second_factor  # noqa: E402
from portal.celery import app  # noqa: E402
from portal.services import case_create  # noqa: E402
from scripts.figures import percentile  # noqa: E402
from search.enrolment import EnrolmentItem, gallery_enrol_batch, gallery_get_or_create  # noqa: E402
from search.models import SearchJob  # noqa: E402
from search.workers import celery_worker_command, stop_process_group, worker_consuming_search_queue  # noqa: E402

PASSWORD = "load-test-password-1"
ACCESS_LOG = WORK_DIR / "access.log"
# Time of the response (to the second), duration in µs, status, and the name Locust gave the request.
ACCESS_FORMAT = "%(t)s %(D)s %(s)s %({x-load-request}i)s"


def fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def fmt1(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


# --- Data ------------------------------------------------------------------------------------


def shared_photos() -> tuple[list[Path], list[tuple[str, Path]]]:
    """Small probe photos, and a gallery photo of each of a few people (none of them a probe)."""
    pairs = settings.FACES_DIR / "pairs"
    with (pairs / "identities.csv").open() as rows:
        identity_of = {row["file"]: row["identity"] for row in csv.DictReader(rows)}
    if not identity_of:
        sys.exit(f"No labelled photos in {pairs} (set FACES_DIR)")
    probes = sorted(
        (pairs / name for name in identity_of if (pairs / name).stat().st_size <= PROBE_MAX_BYTES),
        key=lambda path: path.name,
    )
    gallery, seen = [], set()
    for name in sorted(identity_of):
        person = identity_of[name]
        if person not in seen and (pairs / name) not in probes and len(gallery) < GALLERY_PEOPLE:
            seen.add(person)
            gallery.append((person, pairs / name))
    return probes, gallery


def create_data(probes: list[Path], gallery_photos: list[tuple[str, Path]]) -> dict:
    call_command("migrate", verbosity=0)
    config = {"photos": [str(path) for path in probes], "agencies": {}}
    for slug, name in AGENCIES.items():
        agency = agency_create(slug=slug, name=name, seats=OFFICERS_PER_AGENCY)
        officers = []
        for number in range(1, OFFICERS_PER_AGENCY + 1):
            new = user_create_with_second_factor(
                username=f"{slug}-officer-{number:02d}",
                password=PASSWORD,
                role=Role.OFFICER,
                agency=agency,
                preenrol=True,
            )
            case = case_create(created_by=new.user, number=f"{slug.upper()}-LOAD-{number:02d}", title="Load test")
            officers.append(
                {
                    "username": new.user.username,
                    "password": PASSWORD,
                    "totp_secret": new.totp_secret,
                    "case": str(case.code),
                }
            )
        config["agencies"][slug] = {"officers": officers}
        gallery, created = gallery_get_or_create(
            owner=agency,
            name="Load booking photos",
            legal_basis="Load test data (shared labelled photos)",
            source_type="booking",
            responsible_person="Load test",
            retention_days=30,
        )
        gallery_enrol_batch(
            gallery=gallery,
            gallery_created=created,
            items=[EnrolmentItem(path=str(path), display_name=f"Person {person}") for person, path in gallery_photos],
        )
    return config


# --- Processes -------------------------------------------------------------------------------


class Processes:
    """The web server and the worker; each in its own process group, stopped at the end."""

    def __init__(self):
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, command: list[str], **env) -> subprocess.Popen:
        log = (WORK_DIR / f"{name}.log").open("wb")
        process = subprocess.Popen(
            command, cwd=BASE_DIR, env=os.environ | env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.started.append((name, process))
        return process

    def stop_all(self) -> None:
        for _name, process in reversed(self.started):
            stop_process_group(process)
        self.started.clear()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(what: str, ready, process: subprocess.Popen, log: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"The {what} did not start:\n{(WORK_DIR / log).read_text()[-3000:]}")
        time.sleep(0.5)


def web_ready(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/accounts/login/", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def flush_broker() -> None:
    with app.connection_for_write() as conn:
        conn.default_channel.client.flushdb()


# --- The run --------------------------------------------------------------------------------


class LoadSampler(threading.Thread):
    """The machine's 1-minute load average every 5 s: other work on the same CPUs shows in the figures."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(5):
            self.samples.append((time.time(), os.getloadavg()[0]))


def run_locust(url: str, config_path: Path) -> tuple[dict, dict]:
    """One Locust run: warm-up (sign-in, first uploads), then the baseline, then the burst, by the clock."""
    samples = WORK_DIR / "samples.jsonl"
    launched = time.time()
    burst_from = launched + WARMUP_SECONDS + RUN_SECONDS
    total_seconds = WARMUP_SECONDS + 2 * RUN_SECONDS + LOCUST_START_SECONDS
    sampler = LoadSampler()
    sampler.start()
    subprocess.run(
        [
            "nice",
            "-n",
            str(NICE),
            str(BASE_DIR / ".venv/bin/locust"),
            "-f",
            str(BASE_DIR / "loadtest/locustfile.py"),
            "--headless",
            "-u",
            str(OFFICERS_PER_AGENCY * len(AGENCIES)),
            "-r",
            str(OFFICERS_PER_AGENCY * len(AGENCIES)),
            "-t",
            f"{total_seconds}s",
            "--host",
            url,
            "--only-summary",
            "--loglevel",
            "WARNING",
        ],
        cwd=BASE_DIR,
        env=os.environ
        | {
            "LOADTEST_CONFIG": str(config_path),
            "LOADTEST_SAMPLES": str(samples),
            "LOADTEST_BURST": BURST_AGENCY,
            "LOADTEST_BURST_FROM": str(burst_from),
        },
        stdout=(WORK_DIR / "locust.log").open("wb"),
        stderr=subprocess.STDOUT,
        timeout=total_seconds + 120,
    )
    ended = time.time()
    sampler.stopped.set()
    since = datetime.fromtimestamp(launched, UTC)
    drain = {
        "seconds": wait_for_drain(since),
        "unfinished": SearchJob.objects.filter(created_at__gte=since)
        .exclude(status__in=[SearchJob.Status.DONE, SearchJob.Status.FAILED])
        .count(),
    }
    client = [json.loads(line) for line in samples.read_text().splitlines()]
    server = server_samples()

    def sent_within(all_samples: list[dict], start: float, end: float) -> list[dict]:
        return [s for s in all_samples if start <= s["at"] - s["ms"] / 1000 < end]

    windows = {"baseline": (launched + WARMUP_SECONDS, burst_from), "burst": (burst_from, ended)}
    return {
        name: {
            "started": datetime.fromtimestamp(start, UTC),
            "ended": datetime.fromtimestamp(end, UTC),
            "samples": sent_within(client, start, end),
            "server_samples": sent_within(server, start, end),
            "load_average": [load for at, load in sampler.samples if start <= at < end],
        }
        for name, (start, end) in windows.items()
    }, drain


def wait_for_drain(since: datetime) -> float | None:
    """Seconds from the end of the run until every job is done or failed, or None past the limit."""
    began = time.monotonic()
    unfinished = SearchJob.objects.filter(
        created_at__gte=since, status__in=[SearchJob.Status.QUEUED, SearchJob.Status.RUNNING]
    )
    while unfinished.exists():
        if time.monotonic() - began > DRAIN_LIMIT_SECONDS:
            return None
        time.sleep(0.5)
    return time.monotonic() - began


def server_samples() -> list[dict]:
    """The named requests of gunicorn's access log, like Locust's samples: sent at, name, ms, ok."""
    samples = []
    for line in ACCESS_LOG.read_text().splitlines():
        match = re.match(r"\[(?P<t>[^]]+)\] (?P<us>\d+) (?P<status>\d+) (?P<name>.+)$", line)
        if match and match["name"] != "-":
            seconds = int(match["us"]) / 1e6
            answered = datetime.strptime(match["t"], "%d/%b/%Y:%H:%M:%S %z").timestamp()
            samples.append(
                {"at": answered, "ms": seconds * 1000, "name": match["name"], "ok": match["status"] == "302"}
            )
    return samples


def phase_figures(run: dict) -> dict:
    figures = {
        "requests": len(run["samples"]),
        "failures": sum(not s["ok"] for s in run["samples"]),
        "load_average": percentile(run["load_average"], 50),
        "agencies": {},
    }
    for slug in AGENCIES:
        jobs = SearchJob.objects.filter(agency__slug=slug, created_at__gte=run["started"], created_at__lt=run["ended"])
        waits = [
            (started - created).total_seconds() * 1000
            for created, started in jobs.exclude(started_at=None).values_list("created_at", "started_at")
        ]

        def durations(samples: list[dict], name: str) -> list[float]:
            return [s["ms"] for s in samples if s["name"] == name and s["ok"]]

        uploads = durations(run["samples"], f"upload [{slug}]")
        server = durations(run["server_samples"], f"upload [{slug}]")
        batches = durations(run["samples"], f"upload batch [{slug}]")
        figures["agencies"][slug] = {
            "uploads": len(uploads),
            "upload_p50": percentile(uploads, 50),
            "upload_p95": percentile(uploads, 95),
            "server_p50": percentile(server, 50),
            "server_p95": percentile(server, 95),
            "batches": len(batches),
            "batch_p95": percentile(batches, 95),
            "polls": sum(s["name"] == f"status [{slug}]" for s in run["samples"]),
            "jobs": jobs.count(),
            "done": jobs.filter(status=SearchJob.Status.DONE).count(),
            "failed": jobs.filter(status=SearchJob.Status.FAILED).count(),
            "wait_p50": percentile(waits, 50),
            "wait_p95": percentile(waits, 95),
            "wait_max": max(waits, default=None),
        }
    return figures


def report(phases: dict[str, dict], drain: dict, load_before: float) -> bool:
    """Print the Markdown report; True when every limit holds."""
    base, burst = phases["baseline"], phases["burst"]
    print(f"## Load test, {datetime.now():%Y-%m-%d %H:%M}\n")
    print(
        f"{os.cpu_count()} CPUs (load average {load_before:.1f} before the run, shared with other work); "
        f"gunicorn {WEB_WORKERS} sync workers; 1 Celery worker, prefork {WORKER_CONCURRENCY}; worker and Locust "
        f"at nice {NICE}. "
        f"{len(AGENCIES)} agencies × {OFFICERS_PER_AGENCY} officers in one Locust run: {WARMUP_SECONDS} s warm-up "
        f"(sign-in, not counted), {RUN_SECONDS} s baseline, {RUN_SECONDS} s burst. Each officer uploads one "
        f"photo, polls status.json every second until the search ends, opens the results, waits 8–16 s. "
        f"Burst: each {BURST_AGENCY} officer also drops {os.environ.get('LOADTEST_BURST_PHOTOS', '10')} photos "
        f"in one request every {os.environ.get('LOADTEST_BURST_EVERY', '30')} s.\n"
    )
    print(
        "| phase | agency | uploads | upload→enqueue p50 / p95 ms, server | client p50 / p95 ms "
        "| batches (client p95 ms) | polls | jobs (done / failed) | queue wait p50 / p95 / max ms |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, figures in phases.items():
        for slug, f in figures["agencies"].items():
            batches = f"{f['batches']} ({fmt(f['batch_p95'])})" if f["batches"] else "–"
            print(
                f"| {name} (load {fmt1(figures['load_average'])}) | {slug} | {f['uploads']} "
                f"| {fmt(f['server_p50'])} / {fmt(f['server_p95'])} "
                f"| {fmt(f['upload_p50'])} / {fmt(f['upload_p95'])} "
                f"| {batches} | {f['polls']} | {f['jobs']} ({f['done']} / {f['failed']}) "
                f"| {fmt(f['wait_p50'])} / {fmt(f['wait_p95'])} / {fmt(f['wait_max'])} |"
            )
    checks = []
    for name, figures in phases.items():
        rate = figures["failures"] / max(figures["requests"], 1)
        checks.append(
            (
                f"{name}: failed requests",
                f"≤ {LIMITS['error_rate']:.0%}",
                f"{figures['failures']} of {figures['requests']} ({rate:.2%})",
                rate <= LIMITS["error_rate"],
            )
        )
        worst = max(f["server_p95"] or 0 for f in figures["agencies"].values())
        checks.append(
            (
                f"{name}: upload→enqueue p95 (server), each agency",
                f"≤ {LIMITS['upload_p95_ms']:.0f} ms",
                f"{worst:,.0f} ms at most",
                worst <= LIMITS["upload_p95_ms"],
            )
        )
    checks.append(
        (
            "queue drained after the run",
            f"≤ {DRAIN_LIMIT_SECONDS} s, every job done or failed",
            "not drained"
            if drain["seconds"] is None
            else f"{drain['seconds']:.0f} s, {drain['unfinished']} unfinished",
            drain["seconds"] is not None and drain["unfinished"] == 0,
        )
    )
    other_base, other_burst = base["agencies"][OTHER_AGENCY], burst["agencies"][OTHER_AGENCY]
    increase = other_burst["server_p95"] / other_base["server_p95"] - 1
    checks.append(
        (
            f"{OTHER_AGENCY} upload→enqueue p95 (server) with the {BURST_AGENCY} burst",
            f"≤ +{LIMITS['other_upload_p95_increase']:.0%}",
            f"{fmt(other_base['server_p95'])} → {fmt(other_burst['server_p95'])} ms ({increase:+.0%}; "
            f"client {fmt(other_base['upload_p95'])} → {fmt(other_burst['upload_p95'])} ms)",
            increase <= LIMITS["other_upload_p95_increase"],
        )
    )
    checks.append(
        (
            f"{OTHER_AGENCY} queue wait p95 with the {BURST_AGENCY} burst",
            "reported",
            f"{fmt(other_base['wait_p95'])} → {fmt(other_burst['wait_p95'])} ms "
            f"({BURST_AGENCY}: {fmt(base['agencies'][BURST_AGENCY]['wait_p95'])} → "
            f"{fmt(burst['agencies'][BURST_AGENCY]['wait_p95'])} ms)",
            True,
        )
    )
    print("\n| check | limit | measured | |")
    print("| --- | --- | --- | --- |")
    for check, limit, measured, ok in checks:
        print(f"| {check} | {limit} | {measured} | {'pass' if ok else '**FAIL**'} |")
    return all(ok for *_, ok in checks)


def main() -> int:
    load_before = os.getloadavg()[0]
    probes, gallery_photos = shared_photos()
    print(
        f"Setting up {LOAD_DATABASE}: {len(AGENCIES)} agencies × {OFFICERS_PER_AGENCY} officers, "
        f"{len(gallery_photos)} gallery photos each, {len(probes)} probe photos (≤ {PROBE_MAX_BYTES // 1000} kB)",
        file=sys.stderr,
    )
    _admin_execute(f'DROP DATABASE IF EXISTS "{LOAD_DATABASE}" WITH (FORCE)')
    _admin_execute(f'CREATE DATABASE "{LOAD_DATABASE}"')
    processes = Processes()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        config_path = WORK_DIR / "config.json"
        config_path.write_text(json.dumps(create_data(probes, gallery_photos)))
        config_path.chmod(0o600)
        connection.close()
        flush_broker()
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        web = processes.start(
            "web",
            [
                str(BASE_DIR / ".venv/bin/gunicorn"),
                "portal.wsgi",
                "--workers",
                str(WEB_WORKERS),
                "--bind",
                f"127.0.0.1:{port}",
                "--access-logfile",
                str(ACCESS_LOG),
                "--access-logformat",
                ACCESS_FORMAT,
            ],
        )
        worker_name = f"load-{os.getpid()}@{platform.node()}"
        worker = processes.start(
            "worker",
            ["nice", "-n", str(NICE)]
            + celery_worker_command(name=worker_name, concurrency=WORKER_CONCURRENCY, loglevel="WARNING")
            + ["--without-gossip", "--without-mingle"],
        )
        wait_for("web server", lambda: web_ready(url), web, "web.log")
        wait_for(
            "worker", lambda: worker_consuming_search_queue(worker_name=worker_name, timeout=1.0), worker, "worker.log"
        )
        print(
            f"Locust: warm-up ({WARMUP_SECONDS} s), then baseline and burst ({RUN_SECONDS} s each) on {url}",
            file=sys.stderr,
        )
        runs, drain = run_locust(url, config_path)
        passed = report({name: phase_figures(run) for name, run in runs.items()}, drain, load_before)
    finally:
        processes.stop_all()
        connection.close()
        flush_broker()
        if os.environ.get("LOAD_KEEP"):
            print(f"Kept {LOAD_DATABASE}, {MEDIA_ROOT} and the logs in {WORK_DIR}", file=sys.stderr)
        else:
            _admin_execute(f'DROP DATABASE IF EXISTS "{LOAD_DATABASE}" WITH (FORCE)')
            shutil.rmtree(MEDIA_ROOT, ignore_errors=True)
            shutil.rmtree(WORK_DIR, ignore_errors=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
