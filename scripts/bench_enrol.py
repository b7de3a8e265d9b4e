"""make bench-enrol: batch enrolment rate (faces/s) of `enroll_gallery --workers N` on the default engine, with
the time per stage. A benchmark, never part of the test suite.

Runs in a throw-away database (portal_bench_enrol) on the same PostgreSQL server, with its media under /tmp.
The photos are the shared labelled ones (pairs/ and openset/, group photos included) scaled to at most 1024 px,
re-encoded COPIES times a little differently so that none is skipped as a duplicate, one folder per person as
enroll_gallery reads them. The checks run as in use: the agency has an approved watch-list entry (a probe of a
person of the set, who then raises alerts), and the deployment holds tombstones (the descriptor of another person
of the set, whose photos are therefore refused, and synthetic erased faces that match nobody) in two scenarios:
of the default engine only, and of every installed engine (each photo is then described by dlib too, as the
tombstone rule asks). Each run enrols into a new gallery, deleted afterwards.

Prints, per scenario, the rate (the command's wall clock, its worker processes' start included), the CPU time per
face (analysing processes, the storing process and its PostgreSQL backend), the stages, and Markdown for
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ["DATABASE_NAME"] = os.environ.get("BENCH_DATABASE_NAME", "portal_bench_enrol")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.setdefault("MEDIA_ROOT", "/tmp/portal-bench-enrol-media")
# The watch-list approval publishes a task after commit: to a queue no worker reads.
os.environ["CELERY_QUEUE"] = "bench-enrol-unconsumed"

AGENCY = "bench-enrol"
ERASED_PERSON = "adams.jpg"  # openset O01: erased, so their photos are refused by the tombstone check
WATCHED_PROBE = "img2.jpg"  # P01: on the watch-list, so their enrolments raise alerts
BASE_PHOTO = "carell.jpg"  # openset O02: the agency's first gallery, which the probe of P01 does not match
SYNTHETIC_TOMBSTONES = 200  # per engine


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=6, help="re-encoded copies of each shared photo")
    parser.add_argument(
        "--copies-every", type=int, default=2, help="copies for the scenario with tombstones of every engine (slow)"
    )
    parser.add_argument(
        "--scenarios", default="default,every", help="comma-separated: default, every (which engines hold tombstones)"
    )
    parser.add_argument("--workers", type=int, default=2, help="enroll_gallery --workers")
    parser.add_argument("--max-side", type=int, default=1024, help="the photos scaled to at most this many pixels")
    parser.add_argument("--runs", type=int, default=1, help="enrol the set this many times (a new gallery each)")
    parser.add_argument("--profile", help="write a cProfile of the writing process to this file")
    return parser.parse_args()


def _ensure_database() -> None:
    import psycopg

    from portal import embedded

    admin_url = embedded.database_url().replace(f"/{embedded.DATABASE_NAME}?", "/postgres?")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [os.environ["DATABASE_NAME"]]).fetchone():
            conn.execute(f'CREATE DATABASE "{os.environ["DATABASE_NAME"]}"')


def photos_prepare(folder: Path, copies: int, max_side: int = 1024) -> int:
    """The shared photos ≤ max_side px, `copies` times, one sub-folder per person; the number of photos."""
    import csv

    from django.conf import settings
    from PIL import Image, ImageOps

    people = {}
    for sub in ("pairs", "openset"):
        with (settings.FACES_DIR / sub / "identities.csv").open() as rows:
            for row in csv.reader(rows):
                if row and row[0].endswith(".jpg"):
                    people[(sub, row[0])] = row[1].replace(";", "+")
    count = 0
    for sub in ("pairs", "openset"):
        for source in sorted((settings.FACES_DIR / sub).glob("*.jpg")):
            person = people.get((sub, source.name), f"unlabelled-{source.stem}")
            image = ImageOps.exif_transpose(Image.open(source)).convert("RGB")
            image.thumbnail((max_side, max_side))
            (folder / person).mkdir(exist_ok=True)
            for copy in range(copies):
                image.save(folder / person / f"{copy}-{source.stem}.jpg", "JPEG", quality=92 - copy)
                count += 1
    return count


def tombstones_set(engines: set[str]) -> None:
    """Erased faces of exactly these engines: ERASED_PERSON's descriptor and SYNTHETIC_TOMBSTONES synthetic ones
    (drawn at random: near nobody) for each."""
    import numpy as np
    from django.conf import settings

    from search.faces import ENGINES, EngineNotAvailable, get_engine
    from search.imaging import decode_photo
    from search.models import Tombstone
    from search.photo_faces import PhotoFaces

    Tombstone.objects.exclude(engine__in=engines).delete()
    image = decode_photo((settings.FACES_DIR / "openset" / ERASED_PERSON).read_bytes()).image
    rng = np.random.default_rng(20)
    for name in sorted(engines):
        if Tombstone.objects.filter(engine=name).exists():
            continue
        entry = ENGINES[name]
        try:
            faces = PhotoFaces(image, get_engine(name)).find()
        except EngineNotAvailable:
            continue
        real = max(faces, key=lambda face: face.width).embedding
        synthetic = rng.normal(size=(SYNTHETIC_TOMBSTONES, entry.dimensions))
        if entry.metric == "cosine":
            synthetic /= np.linalg.norm(synthetic, axis=1, keepdims=True)
        else:
            synthetic *= float(np.linalg.norm(real)) / np.sqrt(entry.dimensions)
        Tombstone.objects.bulk_create(
            [Tombstone(engine=name, embedding=real)]
            + [Tombstone(engine=name, embedding=vector.astype(np.float32)) for vector in synthetic]
        )


def checks_prepare():
    """The agency, its users and case, its first gallery and an approved watch-list entry. Idempotent."""
    from django.conf import settings

    from accounts.models import Agency, Role, User
    from accounts.services import agency_create, user_create
    from portal.models import Case
    from portal.services import case_create
    from search import pipeline
    from search.enrolment import EnrolmentItem, gallery_enrol_batch, gallery_get_or_create
    from search.models import Gallery, WatchlistEntry
    from search.services import probe_submit
    from search.watchlist import watchlist_decide, watchlist_descriptors_fill, watchlist_propose

    agency = Agency.objects.filter(slug=AGENCY).first() or agency_create(slug=AGENCY, name="Bench Police", seats=10)
    users = {}
    for username, role in (("bench-officer", Role.OFFICER), ("bench-sup", Role.SUPERVISOR)):
        users[role] = User.objects.filter(username=username).first() or user_create(
            username=username, password="a-long-bench-password-1", role=role, agency=agency
        )
    if not Gallery.objects.filter(owner=agency, name="Bench base").exists():
        # The watch-list compares new faces of the engines the agency's galleries use: one gallery to begin with.
        base, _ = gallery_get_or_create(
            owner=agency,
            name="Bench base",
            legal_basis="Synthetic benchmark",
            source_type="booking",
            responsible_person="Bench",
            retention_days=30,
        )
        photo = str(settings.FACES_DIR / "openset" / BASE_PHOTO)
        gallery_enrol_batch(
            gallery=base, gallery_created=True, items=[EnrolmentItem(path=photo, display_name="Base person")]
        )
    if not WatchlistEntry.objects.filter(agency=agency, status=WatchlistEntry.Status.ACTIVE).exists():
        case = Case.objects.filter(agency=agency, number="BENCH-1").first() or case_create(
            created_by=users[Role.OFFICER], number="BENCH-1", title="Benchmark: an unsolved robbery"
        )
        job = probe_submit(
            case=case,
            uploaded_by=users[Role.OFFICER],
            data=(settings.FACES_DIR / "pairs" / WATCHED_PROBE).read_bytes(),
            purpose="Robbery",
            justification="Benchmark of batch enrolment with its watch-list check",
        )
        pipeline.search_job_run(job_id=job.id)
        face = job.probe.faces.get(index=1)
        entry = watchlist_propose(probe_face=face, user=users[Role.OFFICER], note="benchmark")
        entry = watchlist_decide(entry=entry, user=users[Role.SUPERVISOR], approve=True)
        watchlist_descriptors_fill(entry_id=entry.id)
    return agency


def _backend_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of a process on this machine, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def enrol(folder: Path, workers: int, run: int) -> dict:
    from django.core.management import call_command
    from django.db import connection

    from search.models import Gallery, WatchlistAlert

    name = f"Bench enrolment {datetime.now(UTC):%Y%m%d%H%M%S} {run}"
    alerts_before = WatchlistAlert.objects.count()
    out = io.StringIO()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    cpu_before = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
        _backend_cpu_seconds(backend),
    )
    started = time.perf_counter()
    call_command(
        "enroll_gallery",
        str(folder),
        "--agency",
        AGENCY,
        "--gallery",
        name,
        "--legal-basis",
        "Synthetic benchmark",
        "--source-type",
        "booking",
        "--responsible",
        "Bench",
        "--retention-days",
        "30",
        "--workers",
        str(workers),
        "--json",
        stdout=out,
    )
    seconds = time.perf_counter() - started
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads(out.getvalue())
    result["wall_seconds"] = seconds
    result["load"] = os.getloadavg()[0]
    # CPU seconds: the analysing processes (children, counted once they have ended), this process (which stores),
    # and its PostgreSQL backend (inserts, the HNSW graph, the checks' queries).
    result["cpu"] = {
        "analysis": children.ru_utime + children.ru_stime - cpu_before[1].ru_utime - cpu_before[1].ru_stime,
        "store": own.ru_utime + own.ru_stime - cpu_before[0].ru_utime - cpu_before[0].ru_stime,
        "postgres": _backend_cpu_seconds(backend) - cpu_before[2],
    }
    result["alerts"] = WatchlistAlert.objects.count() - alerts_before
    gallery = Gallery.objects.get(pk=result["gallery_id"])
    WatchlistAlert.objects.filter(face_image__gallery=gallery).delete()
    gallery.delete()
    return result


SCENARIOS = {
    "default": "tombstones of the default engine only (an installation without dlib)",
    "every": "tombstones of every installed engine (what an erasure makes where dlib is installed too)",
}


def report_header() -> None:
    import cv2
    from django.conf import settings

    print(
        f"\n### make bench-enrol — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n\n"
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, OpenCV {cv2.__version__}, "
        f"engine {settings.FACE_ENGINE}; load average at the start "
        + "{:.2f} / {:.2f} / {:.2f}".format(*os.getloadavg())
        + " (1 / 5 / 15 min; the machine is shared, other jobs run beside this one)."
    )


def report(args, scenario: str, photos: int, results: list[dict]) -> float:
    """The scenario's figures as Markdown; the best rate."""
    best = max(results, key=lambda r: r["faces_enrolled"] / r["wall_seconds"])
    print(f"\n#### {SCENARIOS[scenario]}; photos ≤ {args.max_side} px\n")
    print("| run | workers | photos | faces enrolled | skipped | alerts | seconds | faces / s | load average (1 min) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for number, r in enumerate(results, 1):
        print(
            f"| {number} | {args.workers} | {photos} | {r['faces_enrolled']} | {r['files_skipped']} | {r['alerts']} "
            f"| {r['wall_seconds']:.1f} | {r['faces_enrolled'] / r['wall_seconds']:.1f} | {r['load']:.2f} |"
        )
    print(f"\nSkip reasons: {json.dumps(best['skip_reasons'], sort_keys=True)}")
    per_face = {key: 1000 * value / best["faces_enrolled"] for key, value in best["cpu"].items()}
    total = sum(per_face.values())
    print(
        "\nCPU per face enrolled (best run): "
        + ", ".join(f"{key} {value:.1f} ms" for key, value in per_face.items())
        + f"; total {total:.1f} ms, which {os.cpu_count()} idle cores would turn into "
        f"{os.cpu_count() * 1000 / total:.1f} faces/s (derived, not measured)."
    )
    print(
        f"\nStages (best run; wall-clock ms per photo, summed over the {args.workers} analysing processes and the "
        "storing one, so stretched by whatever else the machine runs):\n"
    )
    print("| where | stage | ms per photo |\n|---|---|---:|")
    for key, seconds in best.get("stage_seconds", {}).items():
        where, _, stage = key.partition(".")
        print(f"| {where} | {stage} | {1000 * seconds / photos:.1f} |")
    rate = best["faces_enrolled"] / best["wall_seconds"]
    print(f"\nfaces/s ({scenario}): {rate:.1f}")
    return rate


def main() -> None:
    args = parse_args()
    from portal import embedded

    embedded.ensure_services()
    _ensure_database()
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from search.faces import ENGINES

    call_command("migrate", verbosity=0)
    checks_prepare()
    media = Path(os.environ["MEDIA_ROOT"])
    folder = Path(tempfile.mkdtemp(prefix="bench-enrol-"))
    report_header()
    try:
        for scenario in args.scenarios.split(","):
            tombstones_set({settings.FACE_ENGINE} if scenario == "default" else set(ENGINES))
            copies = args.copies if scenario == "default" else args.copies_every
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            photos = photos_prepare(folder, copies, args.max_side)
            print(f"{photos} photos in {folder}", file=sys.stderr)
            if args.profile:
                import cProfile

                with cProfile.Profile() as profile:
                    results = [enrol(folder, args.workers, run) for run in range(args.runs)]
                profile.dump_stats(f"{args.profile}.{scenario}")
            else:
                results = [enrol(folder, args.workers, run) for run in range(args.runs)]
            report(args, scenario, photos, results)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(media / "gallery", ignore_errors=True)
        shutil.rmtree(media / "crops" / "gallery", ignore_errors=True)


# Only when run: enrolment's worker processes (spawned) may import this module again.
if __name__ == "__main__":
    main()
