"""make bench: per-stage pipeline milliseconds over the shared photos, and search latency over a
gallery padded to 100,000 descriptors. A benchmark, never part of the test suite.

Runs in a throw-away database (portal_bench) on the same server; prints a Markdown report.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime

os.environ["DATABASE_NAME"] = os.environ.get("BENCH_DATABASE_NAME", "portal_bench")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.setdefault("MEDIA_ROOT", "/tmp/portal-bench-media")

from portal import embedded  # noqa: E402

embedded.ensure_services()


def _ensure_database() -> None:
    import psycopg

    admin_url = embedded.database_url().replace(f"/{embedded.DATABASE_NAME}?", "/postgres?")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [os.environ["DATABASE_NAME"]]).fetchone():
            conn.execute(f'CREATE DATABASE "{os.environ["DATABASE_NAME"]}"')


_ensure_database()

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from tqdm import tqdm  # noqa: E402

from scripts.figures import percentile  # noqa: E402
from search import index  # noqa: E402
from search.faces import DLIB_RESNET, ENGINES, get_engine  # noqa: E402
from search.imaging import decode_photo  # noqa: E402
from search.photo_faces import PhotoFaces, timed  # noqa: E402

PADDED_SIZE = int(os.environ.get("BENCH_GALLERY_SIZE", "100000"))


def main() -> None:
    call_command("migrate", verbosity=0)
    pairs = settings.FACES_DIR / "pairs"
    photos = sorted(pairs.glob("*.jpg"))
    if not photos:
        sys.exit(f"No photos in {pairs} (set FACES_DIR)")
    engine = get_engine()
    stage_values: dict[str, list[float]] = {s: [] for s in ("decode", "detect", "embed", "render")}
    per_face: list[float] = []
    descriptors = []
    for path in tqdm(photos, desc="Pipeline stages", unit="photo", file=sys.stderr):
        timings: dict[str, float] = {}
        with timed(timings, "decode"):
            photo = decode_photo(path.read_bytes())
        photo_faces = PhotoFaces(photo.image, engine, timings)
        faces = photo_faces.find()
        for face in faces:
            photo_faces.crop_jpeg(face)
            descriptors.append(face.embedding)
        for stage in stage_values:
            stage_values[stage].append(timings.get(stage, 0.0))
        if faces:
            per_face.append(timings["embed"] / len(faces))

    search_ms, build_s, sizes = pad_and_search(np.asarray(descriptors, dtype=np.float32))
    print_report(len(photos), stage_values, per_face, search_ms, build_s, sizes)


def pad_and_search(real: np.ndarray) -> tuple[list[float], float, tuple[str, str]]:
    """Fill a gallery with PADDED_SIZE descriptors (real ones plus Gaussian distractors fitted to them)."""
    from accounts.models import Agency
    from search.models import FaceImage, Gallery, Profile

    FaceImage.objects.all().delete()
    Profile.objects.all().delete()
    Gallery.objects.all().delete()
    agency, _ = Agency.objects.get_or_create(slug="bench", defaults={"name": "Bench", "seats": 1})
    gallery = Gallery.objects.create(owner=agency, name="Padded", legal_basis="Synthetic benchmark data")
    rng = np.random.default_rng(7)
    mean, cov = real.mean(axis=0), np.cov(real, rowvar=False) + np.eye(real.shape[1]) * 1e-4
    distractors = rng.multivariate_normal(mean, cov, size=PADDED_SIZE - len(real)).astype(np.float32)
    vectors = np.vstack([real, distractors])
    with connection.cursor() as cursor:
        # A bulk load (docs/partitions.md): the engine's graphs dropped, the rows, the graphs built once.
        cursor.execute(f"DROP INDEX IF EXISTS {ENGINES[DLIB_RESNET].hnsw_index}")
        cursor.execute(
            "INSERT INTO search_profile (code, gallery_id, display_name, aliases, record_reference, notes, created_at)"
            " SELECT gen_random_uuid(), %s, 'synthetic ' || g, '[]', '', '', now() FROM generate_series(1, %s) g",
            [gallery.id, len(vectors)],
        )
        cursor.execute("SELECT id FROM search_profile WHERE gallery_id = %s ORDER BY id", [gallery.id])
        profile_ids = [row[0] for row in cursor.fetchall()]
        raw = cursor.connection
        # One COPY at a time on a connection: the faces, then their descriptors, joined on the number.
        with raw.cursor().copy(
            "COPY search_faceimage (code, profile_id, gallery_id, image, crop, source_name, box, landmarks,"
            " engine, quality, minor_at_enrolment, content_hash, created_at) FROM STDIN"
        ) as copy:
            loading = tqdm(profile_ids, desc="Loading faces", unit="face", file=sys.stderr)
            for number, profile_id in enumerate(loading):
                copy.write_row(
                    [
                        str(__import__("uuid").uuid4()),
                        profile_id,
                        gallery.id,
                        "",
                        "",
                        "synthetic",
                        "[0,0,0,0]",
                        "[]",
                        DLIB_RESNET,
                        "{}",
                        False,
                        f"{number:064d}",
                        datetime.now(UTC),
                    ]
                )
        cursor.execute("CREATE TEMP TABLE staged (number int, embedding vector)")
        with raw.cursor().copy("COPY staged (number, embedding) FROM STDIN") as copy:
            for number, vector in enumerate(tqdm(vectors, desc="Loading descriptors", unit="face", file=sys.stderr)):
                copy.write_row([number, "[" + ",".join(f"{v:.6g}" for v in vector) + "]"])
        cursor.execute(
            "INSERT INTO search_facedescriptor (face_image_id, gallery_id, profile_id, engine, minor_at_enrolment,"
            " embedding) SELECT f.id, f.gallery_id, f.profile_id, f.engine, false, s.embedding FROM staged s"
            " JOIN search_faceimage f ON f.gallery_id = %s AND f.content_hash = lpad(s.number::text, 64, '0')",
            [gallery.id],
        )
        cursor.execute("DROP TABLE staged")
        started = time.perf_counter()
        cursor.execute("SET maintenance_work_mem = '1GB'")
        cursor.execute(index.hnsw_create_sql(DLIB_RESNET, **index.hnsw_parameters(DLIB_RESNET)))
        build_s = time.perf_counter() - started
        cursor.execute("ANALYZE search_facedescriptor")
    table_bytes, hnsw_bytes = index.partition_sizes(DLIB_RESNET)
    sizes = (f"{table_bytes / 2**20:.0f} MB", f"{hnsw_bytes / 2**20:.0f} MB")
    latencies = []
    probes = real[rng.permutation(len(real))][:60]
    for vector in probes:
        index.nearest_profiles(vector, engine=DLIB_RESNET, gallery_ids=[gallery.id], limit=10)  # warm
    for _ in range(5):
        for vector in probes:
            started = time.perf_counter()
            index.nearest_profiles(vector, engine=DLIB_RESNET, gallery_ids=[gallery.id], limit=10)
            latencies.append((time.perf_counter() - started) * 1000)
    return latencies, build_s, sizes


def print_report(photo_count, stage_values, per_face, search_ms, build_s, sizes) -> None:
    print(f"\n### make bench — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n")
    print(
        f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}; engine {get_engine().name}, HOG upsample {settings.FACE_DETECT_UPSAMPLE},"
        f" photos scaled to ≤ {settings.FACE_DETECT_MAX_SIDE} px.\n"
    )
    print(f"Pipeline stages over {photo_count} shared photos (ms per photo):\n")
    print("| stage | p50 | p95 |\n|---|---:|---:|")
    for stage, values in stage_values.items():
        print(f"| {stage} | {percentile(values, 50):.1f} | {percentile(values, 95):.1f} |")
    print(f"| embed, per face | {percentile(per_face, 50):.1f} | {percentile(per_face, 95):.1f} |")
    print(
        f"\nSearch over a gallery padded to {PADDED_SIZE:,} descriptors (real descriptors plus synthetic"
        f" Gaussian distractors; HNSW m {index.HNSW_M}, ef_construction {index.HNSW_EF_CONSTRUCTION}, ef_search"
        f" {max(settings.HNSW_EF_SEARCH, 50)}, iterative scan {settings.HNSW_ITERATIVE_SCAN}; top 10 profiles):\n"
    )
    print(f"- HNSW build: {build_s:.1f} s; table {sizes[0]}, index {sizes[1]}")
    print(
        f"- query latency over {len(search_ms)} queries: p50 {percentile(search_ms, 50):.2f} ms,"
        f" p95 {percentile(search_ms, 95):.2f} ms, max {max(search_ms):.2f} ms"
    )
    print(f"- mean {statistics.mean(search_ms):.2f} ms")


if __name__ == "__main__":
    main()
