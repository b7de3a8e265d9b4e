"""make bench-latency: a search as an officer lives it, through the real web server and a real Celery worker.

- **Upload to stored result**: a probe photo POSTed to the REST API of a running gunicorn (`/api/v1/cases/{id}/
  searches/`), until the worker has stored the job's result (`SearchJob.finished_at`, the worker's clock; the
  same machine). Every stage counts: the web process's checks, decode and store, the queue, the worker's
  detection, descriptors, vector search, crops and the result's transaction.
- **Upload to candidates visible**: the case page in Debian's chromium (Playwright): choose the photo, press
  Search, until the results page shows the candidate list (the page's own status polling, then the results
  fragment).

Against the gallery of a kept `make bench-scale` run (`make bench-scale N=1000000 ENGINE=sface ARGS=--keep`: its
PostgreSQL under var/bench-pgdata, agency "bench"), or with `--small`, a throw-away database on the embedded
server holding the shared labelled photos only. Probes: the shared labelled photos scaled to ≤ 1024 px (their
mates are in the gallery). A benchmark, never part of the test suite; prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from scripts.figures import percentile

BASE_DIR = Path(__file__).resolve().parent.parent
BENCH_QUEUE = "bench-latency"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=60, help="searches through the API")
    parser.add_argument("--browser-probes", type=int, default=20, help="searches through the browser (0: none)")
    parser.add_argument("--trace", action="store_true", help="print the browser's responses of each search")
    parser.add_argument("--small", action="store_true", help="a throw-away database with the shared photos only")
    return parser.parse_args()


def bench_scale_database_url() -> str:
    """The kept bench-scale server (started again if it was stopped), with its database portal_scale."""
    from portal import embedded

    pgdata = Path(os.environ.get("BENCH_PGDATA", BASE_DIR / "var" / "bench-pgdata"))
    if not (pgdata / "PG_VERSION").exists():
        sys.exit(f"No kept bench-scale gallery at {pgdata}: run make bench-scale ... ARGS=--keep first, or use --small")
    server = embedded._pgserver().get_server(pgdata, cleanup_mode=None)
    return server.get_uri("portal_scale")


def small_database_url() -> str:
    import psycopg

    from portal import embedded

    embedded.ensure_services()
    admin_url = embedded.database_url().replace(f"/{embedded.DATABASE_NAME}?", "/postgres?")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "portal_latency" WITH (FORCE)')
        conn.execute('CREATE DATABASE "portal_latency"')
    return embedded.database_url().replace(f"/{embedded.DATABASE_NAME}?", "/portal_latency?")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    args = parse_args()
    media = Path(tempfile.mkdtemp(prefix="portal-latency-media-"))
    os.environ["DATABASE_URL"] = small_database_url() if args.small else bench_scale_database_url()
    os.environ.update(
        {
            "CELERY_QUEUE": BENCH_QUEUE,
            "PORTAL_BROKER_DB": "9",
            "PORTAL_CACHE_DB": "9",
            "MEDIA_ROOT": str(media),
            "STATIC_ROOT": str(media.parent / f"{media.name}-static"),
            "UPLOADS_PER_MINUTE": "100000",
            "API_RATE_PER_MINUTE": "100000",
            "SIGN_INS_PER_MINUTE": "1000",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "PORTAL_LOG_LEVEL": "ERROR",
            "DJANGO_SETTINGS_MODULE": "portal.settings",
        }
    )
    from portal import embedded

    embedded.ensure_services()  # the broker (and, with --small, the database server)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)  # WhiteNoise serves the page's script from there
    setup = prepare(small=args.small)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    processes = start_processes(port)
    try:
        api = api_latency(base_url, setup, args.probes)
        browser = browser_latency(base_url, setup, args.browser_probes, args.trace) if args.browser_probes else None
    finally:
        for process in processes:
            from search.workers import stop_process_group

            stop_process_group(process)
    report(args, setup, api, browser)


def prepare(*, small: bool) -> dict:
    """The agency, an officer with a second factor and an API token, a case, and the probe photos."""
    from django.core.management import call_command
    from PIL import Image, ImageOps

    from accounts.models import Agency
    from portal.services import case_create
    from search.faces import YUNET_SFACE
    from search.models import FaceImage, Gallery, OffenseCategory

    OffenseCategory.objects.get_or_create(name="Robbery")
    faces_dir = Path(os.environ.get("FACES_DIR", BASE_DIR.parent / "shared" / "faces"))
    photos = sorted((faces_dir / "pairs").glob("*.jpg"))
    if not photos:
        sys.exit(f"No photos in {faces_dir / 'pairs'} (set FACES_DIR)")
    if small:
        call_command("create_agency", "bench", "--name", "Bench", "--seats", "50", stdout=io.StringIO())
        enrol_shared_photos(Agency.objects.get(slug="bench"), faces_dir / "pairs")
    agency = Agency.objects.get(slug="bench")
    if agency.seats < 50:
        agency.seats = 50
        agency.save(update_fields=["seats"])
    username = f"latency-{int(time.time())}"
    out = io.StringIO()
    call_command(
        "create_user", username, "--agency", "bench", "--role", "officer",
        "--password", "latency bench password 1", "--json", stdout=out,
    )  # fmt: skip
    login = json.loads(out.getvalue()) | {"password": "latency bench password 1"}
    out = io.StringIO()
    call_command("create_api_token", username, "--name", "latency bench", "--days", "1", "--json", stdout=out)
    token = json.loads(out.getvalue())["token"]
    from accounts.models import User

    case = case_create(created_by=User.objects.get(username=username), number=username, title="Latency benchmark")
    folder = Path(tempfile.mkdtemp(prefix="portal-latency-probes-"))
    probes = []
    for source in photos:
        image = ImageOps.exif_transpose(Image.open(source)).convert("RGB")
        image.thumbnail((1024, 1024))
        path = folder / source.name
        image.save(path, "JPEG", quality=90)
        probes.append(path)
    galleries = Gallery.objects.filter(owner=agency, engine=YUNET_SFACE)
    return {
        "username": username,
        "login": login,
        "token": token,
        "case_id": case.id,
        "case_code": str(case.code),
        "probes": probes,
        "faces": FaceImage.objects.filter(gallery__in=galleries).count(),
    }


def enrol_shared_photos(agency, pairs: Path) -> None:
    """The labelled shared photos, one profile per person (as the demo seed enrols them)."""
    import csv

    from search.enrolment import EnrolmentItem, gallery_enrol_batch, gallery_get_or_create

    gallery, created = gallery_get_or_create(
        owner=agency,
        name="Shared photos",
        legal_basis="Benchmark",
        source_type="other",
        responsible_person="Benchmark",
        retention_days=30,
    )
    with (pairs / "identities.csv").open() as rows:
        items = [
            EnrolmentItem(path=str(pairs / row["file"]), display_name=f"Person {row['identity']}")
            for row in csv.DictReader(rows)
        ]
    gallery_enrol_batch(gallery=gallery, gallery_created=created, items=items)


def start_processes(port: int) -> list[subprocess.Popen]:
    """gunicorn (2 processes × 4 threads, as make run) and one Celery worker, each in its own process group."""
    from search.workers import celery_worker_command, worker_consuming_search_queue

    logs = Path(os.environ["MEDIA_ROOT"]).parent
    name = f"latency-{os.getpid()}@{platform.node()}"
    worker = subprocess.Popen(
        celery_worker_command(name=name, loglevel="WARNING") + ["--without-gossip", "--without-mingle"],
        cwd=BASE_DIR,
        stdout=(logs / "latency-worker.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "portal.wsgi", "--workers", "2", "--threads", "4",
         "--bind", f"127.0.0.1:{port}"],
        cwd=BASE_DIR,
        stdout=(logs / "latency-web.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not worker_consuming_search_queue(worker_name=name, timeout=1.0):
        if worker.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"the worker did not start: {logs / 'latency-worker.log'}")
    import urllib.request

    while True:
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            break
        if web.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"gunicorn did not start: {logs / 'latency-web.log'}")
        time.sleep(0.2)
    return [web, worker]


def _multipart(fields: dict[str, str], file_field: str, path: Path) -> tuple[bytes, str]:
    boundary = f"----bench{time.time_ns()}"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{path.name}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n".encode()
        + path.read_bytes()
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def api_latency(base_url: str, setup: dict, count: int) -> dict:
    """POST the photo; the time until the worker stored the result (finished_at) and until the API says done."""
    import urllib.request

    from search.models import SearchJob

    body_fields = {"purpose": "Robbery", "justification": "Latency benchmark: a robbery suspect on CCTV"}
    url = f"{base_url}/api/v1/cases/{setup['case_code']}/searches/"
    headers = {"Authorization": f"Bearer {setup['token']}"}
    probes = setup["probes"]
    stored, accepted, failed, stages = [], [], 0, {}
    for number in range(count + 3):  # the first three warm the web process, the worker and the caches
        path = probes[number % len(probes)]
        body, content_type = _multipart(body_fields, "photo", path)
        request = urllib.request.Request(
            url, data=body, method="POST", headers=headers | {"Content-Type": content_type}
        )
        started = time.time()
        with urllib.request.urlopen(request, timeout=30) as response:
            job_id = json.loads(response.read())["id"]
        accepted_at = time.time()
        deadline = time.monotonic() + 60
        while True:
            job = (
                SearchJob.objects.filter(code=job_id)
                .values("status", "finished_at", "created_at", "started_at", "stage_ms")
                .get()
            )
            if job["finished_at"] is not None or time.monotonic() > deadline:
                break
            time.sleep(0.002)
        if number < 3:
            continue
        if job["status"] != SearchJob.Status.DONE:
            failed += 1
            continue
        stored.append((job["finished_at"].timestamp() - started) * 1000)
        # Where the time went: the web process until the job's row, the queue, then the worker's own stages.
        for stage, ms in [
            ("web: upload to the job's row", (job["created_at"].timestamp() - started) * 1000),
            ("queue: the row to the worker's start", (job["started_at"] - job["created_at"]).total_seconds() * 1000),
            *(job["stage_ms"] or {}).items(),
        ]:
            stages.setdefault(stage, []).append(ms)
        accepted.append((accepted_at - started) * 1000)
        print(f"\rAPI searches: {len(stored) + failed}/{count}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return {"stored": stored, "accepted": accepted, "failed": failed, "stages": stages}


def browser_latency(base_url: str, setup: dict, count: int, trace: bool = False) -> dict:
    """The case page: choose the photo, press Search, until the candidates are on screen."""
    from django.conf import settings
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(BASE_DIR))
    from tests.e2e.browser import sign_in_with_totp

    visible = []
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=settings.CHROMIUM_PATH,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                  "--disable-background-networking", "--disable-component-update"],
        )  # fmt: skip
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in_with_totp(page, base_url, setup["username"], setup["login"])
        probes = setup["probes"]
        for number in range(count + 2):
            page.goto(f"{base_url}/cases/{setup['case_code']}/")
            page.set_input_files("input[type=file]", str(probes[number % len(probes)]))
            page.wait_for_selector(".previews img")
            page.select_option("#id_purpose", "Robbery")
            page.fill("#id_justification", "Latency benchmark: a robbery suspect on CCTV")
            started = time.perf_counter()
            events = []

            def record(response, events=events, started=started):
                events.append(((time.perf_counter() - started) * 1000, response.status, response.url))

            if trace:
                page.on("response", record)
            page.click("button:has-text('Search') >> nth=0")
            page.wait_for_selector("[data-results] .candidates li, [data-results] .empty", timeout=60_000)
            elapsed = (time.perf_counter() - started) * 1000
            if trace:
                page.remove_listener("response", record)
                for at, status, url in events:
                    print(f"{at:7.0f} ms {status} {url.removeprefix(base_url)}", file=sys.stderr)
            if number >= 2:
                visible.append(elapsed)
            print(f"\rBrowser searches: {max(0, number - 1)}/{count}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        browser.close()
    return {"visible": visible}


def report(args, setup: dict, api: dict, browser: dict | None) -> None:
    load = os.getloadavg()
    line = "| {} | {} | {:.0f} | {:.0f} | {:.0f} |"
    print(
        f"\n### make bench-latency — {datetime.now(UTC):%Y-%m-%d}, {setup['faces']:,} gallery faces"
        f" ({'shared photos only' if args.small else 'the kept bench-scale gallery'})\n\n"
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; gunicorn 2 × 4 threads, one Celery"
        f" worker (prefork, concurrency 1), default engine; load average at the end {load[0]:.1f}.\n\n"
        "| path | searches | p50 ms | p95 ms | p99 ms |\n|---|---:|---:|---:|---:|"
    )
    for name, values in [
        ("API: upload to 202 Accepted", api["accepted"]),
        ("API: upload to stored result (worker)", api["stored"]),
        *([("Browser: Search pressed to candidates visible", browser["visible"])] if browser else []),
    ]:
        if values:
            print(line.format(name, len(values), *(percentile(values, q) for q in (50, 95, 99))))
    print("\nUpload to stored result by stage (API searches; worker stages from the job's stage_ms):\n")
    print("| stage | p50 ms | p95 ms |\n|---|---:|---:|")
    for stage, values in api["stages"].items():
        print(f"| {stage} | {percentile(values, 50):.1f} | {percentile(values, 95):.1f} |")
    if api["failed"]:
        print(f"\n{api['failed']} searches did not finish as done.")


if __name__ == "__main__":
    sys.path.insert(0, str(BASE_DIR))
    main()
