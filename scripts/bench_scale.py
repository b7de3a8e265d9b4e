"""make bench-scale N=... ENGINE=...: the product's vector search over a gallery of N faces, against
exact search and a brute-force peer. A benchmark, never part of the test suite.

The gallery is throw-away and lives in a PostgreSQL server of its own (var/bench-pgdata, the same
pgserver build and the same server settings as the product's embedded one), so a benchmark never
touches the portal's data. It holds the real descriptors of the shared photos plus distractors drawn
from a Gaussian fitted to the mean and covariance of that engine's real descriptors, split into three
galleries so that agency-filtered searches can be allowed 100 %, 20 % and 1 % of the faces.

The descriptors are loaded into the partitioned descriptor table (--layout partitioned, the default: by
engine, then by a hash of the gallery, an index per leaf; its DDL is kept here) or the face table as it
was (--layout single); the index is HNSW on half-precision vectors with an exact re-rank (--index
halfvec, the default), on the full vectors (vector) or on binary-quantised ones (binary).

Probes (2,000 by default), each with a true mate in the gallery:
- every labelled shared photo, searched leave-one-out (its own face excluded, its other photos are its mates);
- jittered copies of gallery members: the member plus Gaussian noise as large as the median distance
  between two real photos of one person.

Reports load and HNSW build time, table and index size, PostgreSQL's memory, latency p50/p95/p99 per
ef_search for unfiltered and filtered searches, the agreement of the product's top-1 / top-10 with
exact NumPy search over the same vectors, the brute-force peer (`face_recognition`'s way: distance to
every known descriptor with NumPy) and, for the real probes, the rank of the true mate and the number
of synthetic distractors under the match threshold. Prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from scripts.figures import percentile
from search.faces import DLIB_RESNET, ENGINES, YUNET_SFACE

BASE_DIR = Path(__file__).resolve().parent.parent
ENGINE_ALIASES = {"dlib": DLIB_RESNET, "sface": YUNET_SFACE, "fast": YUNET_SFACE}
FILTERS = {
    "unfiltered": None,
    "filtered 100 %": ("one", "nineteen", "eighty"),
    "filtered 20 %": ("one", "nineteen"),
    "filtered 1 %": ("one",),
}
GALLERY_SHARES = {"one": 0.01, "nineteen": 0.19, "eighty": 0.80}
FILTER_CODES = {"unfiltered": "all", "filtered 100 %": "100", "filtered 20 %": "20", "filtered 1 %": "1"}
LAYOUTS = ("partitioned", "single")
INDEX_KINDS = ("vector", "halfvec", "binary")
# Chosen with this benchmark (docs/benchmarks.md, 2026-12-08): at 1M faces halfvec agreed with the full
# vectors' index to within one probe at every ef_search, for ~10 % less CPU and a third less index; the
# half-precision order needs no deeper over-fetch, the outer query only restores the exact distances.
DEFAULT_INDEX = "halfvec"
DEFAULT_RERANK = 1
DEFAULT_BINARY_RERANK = 20
HASH_PARTITIONS = 8  # MODULUS of the gallery hash under each engine's partition


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="faces in the gallery")
    parser.add_argument("--engine", default="sface", help="dlib, sface or a full engine name")
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="partitioned",
        help="partitioned: the descriptor table by engine and gallery hash, an index per leaf;"
        " single: the face table with a partial index per engine (the layout before the partitions)",
    )
    parser.add_argument(
        "--index",
        choices=INDEX_KINDS,
        default=DEFAULT_INDEX,
        help="vector: HNSW on the full vectors; halfvec: HNSW on half-precision vectors, an over-fetched list"
        " re-ranked by the full-precision distance; binary: HNSW on binary_quantize() by Hamming distance, re-ranked",
    )
    parser.add_argument(
        "--rerank",
        default=None,
        help="comma-separated over-fetch factors F to sweep for halfvec/binary: the screen fetches F × the faces"
        f" the query keeps (default {DEFAULT_RERANK}, binary {DEFAULT_BINARY_RERANK})",
    )
    parser.add_argument(
        "--exact-max",
        type=int,
        default=None,
        help="allowed faces (planner estimate) up to which a filtered search reads them exactly (default: the"
        " product's EXACT_SEARCH_MAX_FACES; 0: always the index)",
    )
    parser.add_argument(
        "--filters", default="all,20,1", help="searches to time: all (no filter), 100, 20, 1 (%% of faces allowed)"
    )
    parser.add_argument(
        "--probe-sources",
        choices=("whole", "one"),
        default="whole",
        help="jittered probes from members of the whole gallery, or of the 1 %% gallery only (the earlier runs)",
    )
    parser.add_argument("--skip-accuracy", action="store_true", help="skip the brute-force peer and distractor counts")
    parser.add_argument("--probes", type=int, default=2000)
    parser.add_argument("--m", type=int, default=None, help="HNSW m (default: the product's)")
    parser.add_argument("--ef-construction", type=int, default=None, help="default: the product's")
    parser.add_argument("--ef-search", default=None, help="comma-separated values to sweep (default: the product's)")
    parser.add_argument("--iterative-scan", default=None, help="strict_order or relaxed_order (default: product's)")
    parser.add_argument("--peer-probes", type=int, default=50, help="probes through the brute-force peer")
    parser.add_argument("--keep", action="store_true", help="keep the bench server and its data afterwards")
    parser.add_argument("--reuse", action="store_true", help="reuse the gallery of a kept run (no load, no build)")
    parser.add_argument(
        "--pipeline",
        action="store_true",
        help="also time batch enrolment and the whole probe pipeline against this gallery",
    )
    parser.add_argument("--skip-searches", action="store_true", help="skip the search sweep (with --pipeline)")
    args = parser.parse_args()
    if args.layout == "single":
        # Its searches found none of the mates on the schema of migration 0018 (top-1 0 % at 10,000 faces): the
        # figures of the single table are those of 2026-11-23 and of the 100k screening in docs/benchmarks.md.
        parser.error("--layout single is not measurable on today's schema; use the partitioned layout")
    return args


# Only when run: enrolment's worker processes (spawned) import this module again and must not start servers.
if __name__ == "__main__":
    ARGS = parse_args()
    BENCH_PGDATA = Path(os.environ.get("BENCH_PGDATA", BASE_DIR / "var" / "bench-pgdata"))
    # One database per gallery size, layout and index, so that --keep / --reuse build each variant once
    # (0: the product's m / ef_construction).
    BENCH_DATABASE = f"portal_scale_{ARGS.n}_{ARGS.layout}_{ARGS.index}_m{ARGS.m or 0}_efc{ARGS.ef_construction or 0}"

    def start_bench_server() -> str:
        """A PostgreSQL server of the benchmark's own, tuned like the product's embedded one."""
        from portal import embedded

        pgserver = embedded._pgserver()
        if not ARGS.reuse and BENCH_PGDATA.exists():
            stop_bench_server(delete=True)
        server = pgserver.get_server(BENCH_PGDATA, cleanup_mode=None)
        embedded.tune_postgres(server, BENCH_PGDATA)
        if "1 row" not in server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{BENCH_DATABASE}';"):
            server.psql(f"CREATE DATABASE {BENCH_DATABASE};")
        return server.get_uri(BENCH_DATABASE)

    def stop_bench_server(*, delete: bool) -> None:
        from portal import embedded

        if (BENCH_PGDATA / "postmaster.pid").exists():
            user = "pgserver" if os.geteuid() == 0 else None
            embedded._pgserver()._commands.pg_ctl(["-w", "stop", "-m", "fast"], pgdata=BENCH_PGDATA, user=user)
        if delete:
            shutil.rmtree(BENCH_PGDATA, ignore_errors=True)

    os.environ["DATABASE_URL"] = start_bench_server()
    # The pipeline part submits probes as one officer and must not reach a running portal's workers.
    os.environ["UPLOADS_PER_MINUTE"] = "1000000"
    os.environ["CELERY_QUEUE"] = "bench-scale-unconsumed"
    os.environ["FACE_ENGINE"] = ENGINE_ALIASES.get(ARGS.engine, ARGS.engine)  # the engine probes are searched with
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ.setdefault("MEDIA_ROOT", "/tmp/portal-bench-media")

    import django  # noqa: E402

    django.setup()

    from django.conf import settings  # noqa: E402
    from django.core.management import call_command  # noqa: E402
    from django.db import connection  # noqa: E402
    from tqdm import tqdm  # noqa: E402

    from search import index  # noqa: E402
    from search.faces import get_engine  # noqa: E402
    from search.imaging import decode_photo  # noqa: E402
    from search.photo_faces import PhotoFaces  # noqa: E402

    ENGINE = ENGINE_ALIASES.get(ARGS.engine, ARGS.engine)
    METRIC = ENGINES[ENGINE].metric
    HNSW = index.hnsw_parameters(ENGINE)
    M = ARGS.m or HNSW["m"]
    EF_CONSTRUCTION = ARGS.ef_construction or HNSW["ef_construction"]
    EF_SEARCH_VALUES = [int(v) for v in ARGS.ef_search.split(",")] if ARGS.ef_search else [settings.HNSW_EF_SEARCH]
    ITERATIVE_SCAN = ARGS.iterative_scan or settings.HNSW_ITERATIVE_SCAN
    EXACT_MAX = settings.EXACT_SEARCH_MAX_FACES if ARGS.exact_max is None else ARGS.exact_max
    LAYOUT, INDEX = ARGS.layout, ARGS.index
    if ARGS.rerank:
        RERANK_VALUES = [int(v) for v in ARGS.rerank.split(",")]
    else:
        RERANK_VALUES = [{"vector": 1, "halfvec": DEFAULT_RERANK, "binary": DEFAULT_BINARY_RERANK}[INDEX]]
    if INDEX == "vector" and RERANK_VALUES != [1]:
        raise SystemExit("--rerank applies to --index halfvec or binary; full vectors need no re-ranking")
    DIMENSIONS = ENGINES[ENGINE].dimensions
    TABLE, ID_COLUMN = (
        ("search_facedescriptor", "face_image_id") if LAYOUT == "partitioned" else ("search_faceimage", "id")
    )
    TOP_K = 10
    LOAD_AT_START = " / ".join(f"{value:.2f}" for value in os.getloadavg())


def progress(iterable, **kwargs):
    return tqdm(iterable, file=sys.stderr, mininterval=kwargs.pop("mininterval", 2), **kwargs)


# ---------------------------------------------------------------------------------------------------------
# Real descriptors of the shared photos


def real_descriptors() -> tuple[np.ndarray, list[str], list[str]]:
    """The labelled face of every labelled shared photo: vectors, file names, identities (cached)."""
    pairs = Path(settings.FACES_DIR) / "pairs"
    with open(pairs / "identities.csv") as handle:
        labelled = sorted((row["file"], row["identity"]) for row in csv.DictReader(handle))
    cache = BASE_DIR / "var" / "bench-cache" / f"{ENGINE}-identities.npz"
    if cache.exists():
        cached = np.load(cache)
        if list(cached["files"]) == [f for f, _ in labelled]:
            return cached["vectors"], list(cached["files"]), list(cached["identities"])
    engine = get_engine(ENGINE)
    vectors, files, identities = [], [], []
    for file_name, identity in progress(labelled, desc="Describing the shared photos", unit="photo"):
        photo = decode_photo((pairs / file_name).read_bytes())
        faces = PhotoFaces(photo.image, engine).find()
        if not faces:
            print(f"  no face found in {file_name}; left out", file=sys.stderr)
            continue
        largest = max(faces, key=lambda face: face.width)  # the labelled person is the larger face
        vectors.append(largest.embedding)
        files.append(file_name)
        identities.append(identity)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, vectors=np.asarray(vectors, dtype=np.float32), files=files, identities=identities)
    return np.asarray(vectors, dtype=np.float32), files, identities


def distances(vectors: np.ndarray, probe: np.ndarray) -> np.ndarray:
    if METRIC == "cosine":
        return 1.0 - (vectors @ probe) / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(probe))
    return np.linalg.norm(vectors - probe, axis=1)


def mate_distances(real: np.ndarray, identities: list[str]) -> list[float]:
    found = []
    for i in range(len(real)):
        for j in range(i + 1, len(real)):
            if identities[i] == identities[j]:
                found.append(float(distances(real[j : j + 1], real[i])[0]))
    return found


# ---------------------------------------------------------------------------------------------------------
# The gallery


def shrunk_covariance(fit: np.ndarray) -> np.ndarray:
    """Ledoit-Wolf covariance: a few dozen photos give a sample covariance of rank < 128, shrunk towards a
    scaled identity so the distractors vary in every dimension, as descriptors of a population do."""
    centred = fit.astype(np.float64) - fit.mean(axis=0)
    n, d = centred.shape
    sample = centred.T @ centred / n
    mu = np.trace(sample) / d
    delta = ((sample - mu * np.eye(d)) ** 2).sum() / d
    beta = min(delta, sum(((np.outer(x, x) - sample) ** 2).sum() for x in centred) / d / n / n)
    alpha = beta / delta
    return (1 - alpha) * sample + alpha * mu * np.eye(d)


def synthetic_distractors(fit: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Distractors from a Gaussian with the mean and (shrunk) covariance of real descriptors."""
    mean, cov = fit.mean(axis=0), shrunk_covariance(fit)
    chunks = []
    for start in range(0, count, 200_000):
        chunks.append(rng.multivariate_normal(mean, cov, size=min(200_000, count - start)).astype(np.float32))
    return np.vstack(chunks) if chunks else np.zeros((0, fit.shape[1]), dtype=np.float32)


def gallery_layout(n: int, real_count: int) -> np.ndarray:
    """Gallery name of each vector: the real descriptors first, all in the 1 % gallery (every filter has them)."""
    counts = {name: int(round(n * share)) for name, share in GALLERY_SHARES.items()}
    counts["eighty"] = n - counts["one"] - counts["nineteen"]
    if counts["one"] < real_count:
        raise SystemExit(f"N={n} is too small: the 1 % gallery must hold the {real_count} real descriptors")
    return np.array(["one"] * counts["one"] + ["nineteen"] * counts["nineteen"] + ["eighty"] * counts["eighty"])


def load_gallery(vectors: np.ndarray, layout: np.ndarray) -> tuple[dict[str, int], float]:
    """Galleries, one profile per vector and its face row, by COPY; the HNSW index dropped first."""
    from pgvector.psycopg import register_vector

    from accounts.models import Agency
    from search.models import Gallery

    agency = Agency.objects.create(slug="bench", name="Bench", seats=5)
    gallery_ids = {
        name: Gallery.objects.create(
            owner=agency, name=f"Synthetic {name}", engine=ENGINE, legal_basis="Synthetic benchmark data"
        ).id
        for name in GALLERY_SHARES
    }
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for name in (entry.hnsw_index for entry in ENGINES.values()):
            cursor.execute(f"DROP INDEX IF EXISTS {name}")
        cursor.execute("CREATE TEMP TABLE staged (ordinal int, gallery_id bigint, embedding vector)")
        raw = connection.connection
        register_vector(raw)
        with raw.cursor().copy("COPY staged (ordinal, gallery_id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int4", "int8", "vector"])
            for ordinal in progress(range(len(vectors)), desc="Loading", unit="face"):
                copy.write_row([ordinal, gallery_ids[layout[ordinal]], vectors[ordinal]])
        cursor.execute(
            "INSERT INTO search_profile (code, gallery_id, display_name, aliases, record_reference, notes, created_at)"
            " SELECT gen_random_uuid(), gallery_id, 'face ' || ordinal, '[]', '', '', now() FROM staged"
        )
        single = LAYOUT != "partitioned"
        if single:  # the layout before the descriptor table: the vector in the face table itself
            cursor.execute(f"ALTER TABLE search_faceimage ADD COLUMN IF NOT EXISTS embedding vector({DIMENSIONS})")
        cursor.execute(
            "INSERT INTO search_faceimage (code, profile_id, gallery_id, image, crop, source_name, box, landmarks,"
            + (" embedding," if single else "")
            + " engine, quality, minor_at_enrolment, content_hash, created_at)"
            " SELECT gen_random_uuid(), p.id, s.gallery_id, '', '', s.ordinal::text, '[0,0,0,0]', '[]',"
            + (" s.embedding," if single else "")
            + " %s, '{}', false, lpad(s.ordinal::text, 64, '0'), now()"
            " FROM staged s JOIN search_profile p"
            " ON p.gallery_id = s.gallery_id AND p.display_name = 'face ' || s.ordinal",
            [ENGINE],
        )
        if not single:
            for statement in descriptor_table_ddl():
                cursor.execute(statement)
            cursor.execute(
                "INSERT INTO search_facedescriptor (face_image_id, gallery_id, profile_id, engine,"
                " minor_at_enrolment, embedding)"
                " SELECT f.id, f.gallery_id, f.profile_id, f.engine, f.minor_at_enrolment, s.embedding"
                " FROM staged s JOIN search_faceimage f"
                " ON f.gallery_id = s.gallery_id AND f.source_name = s.ordinal::text"
                " WHERE f.engine = %s",
                [ENGINE],
            )
        cursor.execute("DROP TABLE staged")
    return gallery_ids, time.perf_counter() - started


# ---------------------------------------------------------------------------------------------------------
# The descriptor table and its indexes. The partitioned layout mirrors the product's descriptor table
# (search_facedescriptor: LIST (engine), each engine's partition HASH (gallery_id) MODULUS 8, the vector
# index created on each engine's partition, so one per leaf); its SQL is kept here, not imported, so the
# benchmark measures this layout whatever the migrations hold.


def engine_short(engine: str) -> str:
    return ENGINES[engine].hnsw_index.split("_")[2]  # face_embedding_<short>_hnsw


def descriptor_table_ddl() -> list[str]:
    statements = [
        "DROP TABLE IF EXISTS search_facedescriptor CASCADE",
        f"""CREATE TABLE search_facedescriptor (
            face_image_id bigint NOT NULL REFERENCES search_faceimage (id) ON DELETE CASCADE,
            gallery_id bigint NOT NULL,
            profile_id bigint NOT NULL,
            engine varchar(40) NOT NULL,
            minor_at_enrolment boolean NOT NULL,
            embedding vector({DIMENSIONS}) NOT NULL
        ) PARTITION BY LIST (engine)""",
    ]
    for engine in ENGINES:
        short = engine_short(engine)
        statements.append(
            f"CREATE TABLE search_facedescriptor_{short} PARTITION OF search_facedescriptor"
            f" FOR VALUES IN ('{engine}') PARTITION BY HASH (gallery_id)"
        )
        statements += [
            f"CREATE TABLE search_facedescriptor_{short}_{remainder} PARTITION OF search_facedescriptor_{short}"
            f" FOR VALUES WITH (MODULUS {HASH_PARTITIONS}, REMAINDER {remainder})"
            for remainder in range(HASH_PARTITIONS)
        ]
    # What ON DELETE CASCADE from the face table looks rows up by.
    statements.append("CREATE INDEX search_facedescriptor_face_image ON search_facedescriptor (face_image_id)")
    return statements


def index_expression(kind: str) -> str:
    """The indexed expression and its operator class, per index kind, for ENGINE's metric."""
    metric = ENGINES[ENGINE].metric
    if kind == "vector":
        return f"embedding {index.OPCLASSES[metric]}"
    if kind == "halfvec":
        return f"(embedding::halfvec({DIMENSIONS})) {'halfvec_cosine_ops' if metric == 'cosine' else 'halfvec_l2_ops'}"
    return f"(binary_quantize(embedding)::bit({DIMENSIONS})) bit_hamming_ops"


def index_create_sql(kind: str, *, m: int, ef_construction: int) -> str:
    with_ = f"WITH (m = {int(m)}, ef_construction = {int(ef_construction)})"
    if LAYOUT == "partitioned":
        short = engine_short(ENGINE)
        return (
            f"CREATE INDEX search_facedescriptor_{short}_hnsw ON search_facedescriptor_{short}"
            f" USING hnsw ({index_expression(kind)}) {with_}"
        )
    return (
        f"CREATE INDEX {ENGINES[ENGINE].hnsw_index} ON search_faceimage USING hnsw ({index_expression(kind)})"
        f" {with_} WHERE engine = '{ENGINE}'"
    )


def build_index() -> float:
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(index_create_sql(INDEX, m=M, ef_construction=EF_CONSTRUCTION))
        cursor.execute(f"VACUUM ANALYZE {TABLE}")
        cursor.execute("VACUUM ANALYZE search_faceimage")
        cursor.execute("VACUUM ANALYZE search_profile")
    return time.perf_counter() - started


def leaves() -> list[tuple[str, int]]:
    """The engine's leaf partitions holding faces and their face counts (partitioned layout)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text, count(*) FROM search_facedescriptor WHERE engine = %s"
            " GROUP BY 1 ORDER BY 1",
            [ENGINE],
        )
        return [(name, int(count)) for name, count in cursor.fetchall()]


def face_ids_by_ordinal(count: int, gallery_ids: list[int]) -> np.ndarray:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, source_name::int FROM search_faceimage WHERE engine = %s AND gallery_id = ANY(%s)",
            [ENGINE, gallery_ids],
        )
        rows = np.asarray(cursor.fetchall(), dtype=np.int64)
    ids = np.zeros(count, dtype=np.int64)
    ids[rows[:, 1]] = rows[:, 0]
    return ids


def sizes() -> dict[str, int]:
    """On disk: the descriptors' table (all leaves), its vector indexes, the table with every index, the
    database."""
    relations = (
        "SELECT relid FROM pg_partition_tree(%s) WHERE isleaf" if LAYOUT == "partitioned" else "SELECT %s::regclass"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COALESCE(sum(pg_table_size(relid)), 0), COALESCE(sum(pg_total_relation_size(relid)), 0)"
            f" FROM ({relations}) AS leaves (relid)",
            [TABLE],
        )
        table, total = cursor.fetchone()
        cursor.execute(
            "SELECT COALESCE(sum(pg_relation_size(i.indexrelid)), 0) FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam"
            f" WHERE a.amname = 'hnsw' AND i.indrelid IN ({relations})",
            [TABLE],
        )
        hnsw = cursor.fetchone()[0]
        cursor.execute("SELECT pg_database_size(current_database())")
        database = cursor.fetchone()[0]
    return {"table": int(table), "hnsw": int(hnsw), "table with indexes": int(total), "database": int(database)}


def postgres_memory() -> dict[str, int]:
    """Resident memory of the bench server's processes: RSS of the largest and PSS summed (shared buffers
    counted once)."""
    postmaster = int((BENCH_PGDATA / "postmaster.pid").read_text().split()[0])
    pids = [postmaster]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster:
            pids.append(int(stat.parent.name))
    pss = rss = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
                elif line.startswith("Rss:"):
                    rss = max(rss, int(line.split()[1]) * 1024)
        except OSError:
            continue
    return {"pss_sum": pss, "rss_max": rss, "processes": len(pids)}


# ---------------------------------------------------------------------------------------------------------
# Probes, exact search, the product's search, the peer


def make_probes(vectors, layout, real_count, mate_median, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probe vectors, the ordinal of their source (-1: none), and the ordinal to exclude (own face)."""
    probes = [vectors[i] for i in range(real_count)]
    sources = [-1] * real_count
    exclude = list(range(real_count))  # leave-one-out: a real photo is searched without its own face
    # From the whole gallery (most mates then in the largest gallery's leaf, which the search must walk), or
    # from the 1 % gallery only (every filter holds the true mate; the figures before the partitions).
    pool = np.arange(real_count, len(vectors)) if ARGS.probe_sources == "whole" else np.flatnonzero(layout == "one")
    for _ in range(ARGS.probes - real_count):
        source = int(rng.choice(pool))
        noise = rng.normal(size=vectors.shape[1]).astype(np.float32)
        if METRIC == "cosine":
            scale = np.linalg.norm(vectors[source])
            noise *= scale * np.sqrt(2 * mate_median) / np.linalg.norm(noise)
        else:
            noise *= mate_median / np.linalg.norm(noise)
        probes.append(vectors[source] + noise)
        sources.append(source)
        exclude.append(-1)
    return np.asarray(probes, dtype=np.float32), np.asarray(sources), np.asarray(exclude)


def exact_top(vectors, allowed, probes, exclude, k) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k ordinals and distances by NumPy, over the allowed vectors, the excluded one left out."""
    subset = vectors[allowed]
    if METRIC == "cosine":
        subset = subset / np.linalg.norm(subset, axis=1, keepdims=True)
    norms = (subset * subset).sum(axis=1)
    top_ids = np.zeros((len(probes), k), dtype=np.int64)
    top_d = np.zeros((len(probes), k), dtype=np.float32)
    position = {int(o): p for p, o in enumerate(allowed)} if len(allowed) < len(vectors) else None
    for start in range(0, len(probes), 100):
        batch = probes[start : start + 100]
        if METRIC == "cosine":
            batch = batch / np.linalg.norm(batch, axis=1, keepdims=True)
            d = 1.0 - batch @ subset.T
        else:
            d = np.sqrt(np.maximum(norms[None, :] - 2 * batch @ subset.T + (batch * batch).sum(axis=1)[:, None], 0))
        for row, ordinal in enumerate(exclude[start : start + 100]):
            if ordinal >= 0:
                d[row, ordinal if position is None else position[int(ordinal)]] = np.inf
        part = np.argpartition(d, k, axis=1)[:, :k]
        part_d = np.take_along_axis(d, part, axis=1)
        order = np.argsort(part_d, axis=1)
        top_ids[start : start + 100] = allowed[np.take_along_axis(part, order, axis=1)]
        top_d[start : start + 100] = np.take_along_axis(part_d, order, axis=1)
    return top_ids, top_d


def search_sql(kind: str, *, filtered: bool) -> str:
    """The vector query of one index kind. vector: the product's query (the engine a literal, so the
    planner prunes the other engines' partitions or matches the partial index). halfvec / binary: the
    index's screen over-fetches %(fetch)s faces, the outer query re-ranks them by the full-precision
    distance."""
    operator = index._OPERATORS[ENGINES[ENGINE].metric]
    galleries = " AND gallery_id = ANY(%(galleries)s)" if filtered else ""
    where = f"engine = '{ENGINE}'{galleries} AND NOT ({ID_COLUMN} = ANY(%(exclude)s)) AND NOT minor_at_enrolment"
    if kind == "exact":
        # Every allowed face read and sorted by its distance. The OFFSET 0 fence keeps the planner from
        # ordering through the vector index: with partitions it walks the leaves' indexes even with
        # enable_indexscan off (PostgreSQL 18 picks the disabled index scans under a Merge Append).
        return (
            f"SELECT id, profile_id, distance FROM ("
            f" SELECT {ID_COLUMN} AS id, profile_id, embedding {operator} %(probe)s::vector AS distance FROM {TABLE}"
            f" WHERE {where} OFFSET 0"
            f") AS allowed ORDER BY distance LIMIT %(limit)s"
        )
    if kind == "vector":
        return (
            f"SELECT {ID_COLUMN}, profile_id, embedding {operator} %(probe)s::vector AS distance FROM {TABLE}"
            f" WHERE {where} ORDER BY embedding {operator} %(probe)s::vector LIMIT %(limit)s"
        )
    if kind == "halfvec":
        screen = f"embedding::halfvec({DIMENSIONS}) {operator} %(probe)s::halfvec({DIMENSIONS})"
    else:
        screen = f"binary_quantize(embedding)::bit({DIMENSIONS}) <~> binary_quantize(%(probe)s::vector)"
    return (
        f"SELECT id, profile_id, embedding {operator} %(probe)s::vector AS distance FROM ("
        f" SELECT {ID_COLUMN} AS id, profile_id, embedding FROM {TABLE} WHERE {where}"
        f" ORDER BY {screen} LIMIT %(fetch)s"
        f") AS screened ORDER BY distance LIMIT %(limit)s"
    )


def estimated_faces(cursor, gallery_ids: list[int]) -> int:
    """The planner's estimate of the allowed faces, as the product's index._estimated_faces makes it."""
    cursor.execute(
        f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {TABLE} WHERE engine = %s AND gallery_id = ANY(%s)",
        [ENGINE, list(gallery_ids)],
    )
    plan = cursor.fetchone()[0]
    plan = plan if isinstance(plan, list) else json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def index_in_plan(probe, gallery_ids) -> bool:
    """Whether the planner walks the vector index for this run's query (at a few thousand faces it may
    rather read them all)."""
    keep = TOP_K * index.OVERFETCH
    params = {
        "probe": index._vector_literal(probe),
        "galleries": list(gallery_ids or []),
        "exclude": [],
        "limit": keep,
        "fetch": keep * RERANK_VALUES[0],
    }
    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN (FORMAT JSON) " + search_sql(INDEX, filtered=gallery_ids is not None)
            if not (LAYOUT == "single" and INDEX == "vector")
            else "EXPLAIN (FORMAT JSON) " + search_sql("vector", filtered=gallery_ids is not None),
            params,
        )
        plan = cursor.fetchone()[0]
    return "Index Scan" in (plan if isinstance(plan, str) else json.dumps(plan))


PATHS_TAKEN: dict[str, int] = {}  # "exact" / "index" → searches, for the row's label


def variant_search(
    probe, gallery_ids, exclude_face_id, *, ef: int, rerank: int, explain: bool = False
) -> list[tuple[int, int, float]] | int:
    """nearest_profiles with this run's layout and index kind: the nearest face of each of the TOP_K nearest
    profiles. The same steps as the product's: a small allowed set read exactly, ef_search and the
    iterative scan set for the transaction, TOP_K × OVERFETCH faces, one per profile."""
    from django.db import transaction

    keep = TOP_K * index.OVERFETCH
    params = {
        "probe": index._vector_literal(probe),
        "galleries": list(gallery_ids or []),
        "exclude": [int(exclude_face_id)] if exclude_face_id else [],
        "limit": keep,
        "fetch": keep * rerank,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        exact = gallery_ids is not None and estimated_faces(cursor, gallery_ids) <= EXACT_MAX
        PATHS_TAKEN["exact" if exact else "index"] = PATHS_TAKEN.get("exact" if exact else "index", 0) + 1
        cursor.execute(
            "SELECT set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', %s, true)",
            [str(min(1000, max(ef, keep if exact else keep * rerank))), ITERATIVE_SCAN],
        )
        sql = search_sql("exact" if exact else INDEX, filtered=gallery_ids is not None)
        if explain:  # the shared buffers the query touched: its cost in pages, whatever else runs on the machine
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params)
            plan = cursor.fetchone()[0]
            top = (plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]
            return int(top.get("Shared Hit Blocks", 0)) + int(top.get("Shared Read Blocks", 0))
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    best: dict[int, tuple[int, int, float]] = {}
    for face_image_id, profile_id, distance in rows:
        if profile_id not in best:
            best[profile_id] = (face_image_id, profile_id, float(distance))
    return sorted(best.values(), key=lambda hit: hit[2])[:TOP_K]


def product_search(probe, gallery_ids, exclude_face_id, *, ef: int, rerank: int) -> list[tuple[int, int, float]]:
    """The single layout with full vectors: the product's own search.index.nearest_profiles, unchanged."""
    if LAYOUT == "single" and INDEX == "vector" and ARGS.exact_max is None:
        settings.HNSW_EF_SEARCH = ef  # the product searches with max(this, top k × over-fetch)
        settings.HNSW_ITERATIVE_SCAN = ITERATIVE_SCAN
        exclude = (int(exclude_face_id),) if exclude_face_id else ()
        hits = index.nearest_profiles(
            probe, engine=ENGINE, gallery_ids=gallery_ids, limit=TOP_K, exclude_face_image_ids=exclude
        )
        return [(hit.face_image_id, hit.profile_id, hit.distance) for hit in hits]
    return variant_search(probe, gallery_ids, exclude_face_id, ef=ef, rerank=rerank)


def run_searches(
    label, probes, exclude, face_ids, ordinal_of, gallery_ids, *, ef: int, rerank: int
) -> tuple[list[float], np.ndarray]:
    latencies, found = [], np.full((len(probes), TOP_K), -1, dtype=np.int64)
    for i in range(min(50, len(probes))):  # warm the caches
        product_search(probes[i], gallery_ids, face_ids[exclude[i]] if exclude[i] >= 0 else 0, ef=ef, rerank=rerank)
    PATHS_TAKEN.clear()
    cpu = []
    backend = backend_schedstat()
    for i in progress(range(len(probes)), desc=label, unit="search", leave=False):
        backend_before, own_before = cpu_ns(backend), time.thread_time_ns()
        started = time.perf_counter()
        hits = product_search(
            probes[i], gallery_ids, face_ids[exclude[i]] if exclude[i] >= 0 else 0, ef=ef, rerank=rerank
        )
        latencies.append((time.perf_counter() - started) * 1000)
        cpu.append((cpu_ns(backend) - backend_before + time.thread_time_ns() - own_before) / 1e6)
        for rank, (face_image_id, _, _) in enumerate(hits):
            found[i, rank] = ordinal_of[face_image_id]
    CPU_MS[label] = cpu
    BUFFERS[label] = [
        variant_search(
            probes[i], gallery_ids, face_ids[exclude[i]] if exclude[i] >= 0 else 0, ef=ef, rerank=rerank, explain=True
        )
        for i in range(min(200, len(probes)))
    ]
    return latencies, found


BUFFERS: dict[str, list[int]] = {}  # shared buffers touched per search (EXPLAIN ANALYZE of 200 probes), by label


CPU_MS: dict[str, list[float]] = {}  # the last run's CPU milliseconds per search, by its label


def backend_schedstat() -> Path:
    """/proc/<pid>/schedstat of this connection's PostgreSQL backend: its first field is the time the
    process has run on a CPU, in nanoseconds. Searches timed by CPU as well as by the clock, so that a
    machine shared with other work still gives comparable figures (parallel workers not included)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return Path(f"/proc/{cursor.fetchone()[0]}/schedstat")


def cpu_ns(schedstat: Path) -> int:
    return int(schedstat.read_text().split()[0])


def agreement(found, exact_ids, exact_d, vectors, probes) -> tuple[float, float]:
    """Top-1 agreement (a different face at exactly the same distance counts as agreeing) and recall@10."""
    top1 = 0
    for i in range(len(probes)):
        if found[i, 0] == exact_ids[i, 0]:
            top1 += 1
        elif found[i, 0] >= 0 and abs(distances(vectors[found[i, 0]][None, :], probes[i])[0] - exact_d[i, 0]) < 1e-6:
            top1 += 1
    recall = np.mean([len(set(found[i]) & set(exact_ids[i])) / TOP_K for i in range(len(probes))])
    return top1 / len(probes), float(recall)


def peer_search_ms(vectors, probes) -> list[float]:
    """face_recognition.face_distance: np.linalg.norm(known - probe, axis=1) over float64 descriptors."""
    known = vectors.astype(np.float64)
    timings = []
    for probe in progress(probes, desc="Brute-force peer", unit="search", leave=False):
        started = time.perf_counter()
        d = np.linalg.norm(known - probe.astype(np.float64), axis=1)
        np.argsort(d)[:TOP_K]
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def mates_in_gallery(vectors, identities, real_count, exact_ids, found) -> dict:
    """The real photos searched leave-one-out over the benchmark's gallery, whose distractors were fitted to
    every real photo, the probe's own person included (a pessimistic model: they fall in that person's own
    subspace): the true mate at rank 1 by exact search and by the product, and how many synthetic
    distractors fall under the engine's threshold."""
    from search.faces import engine_threshold

    threshold = engine_threshold(ENGINE)
    exact_rank1 = product_rank1 = 0
    under = []
    for i in range(real_count):
        mates = {j for j in range(real_count) if j != i and identities[j] == identities[i]}
        exact_rank1 += int(exact_ids[i, 0] in mates)
        product_rank1 += int(found[i, 0] in mates)
        under.append(int((distances(vectors[real_count:], vectors[i]) < threshold).sum()))
    return {
        "threshold": threshold,
        "probes": real_count,
        "exact_rank1": exact_rank1,
        "product_rank1": product_rank1,
        "under_mean": float(np.mean(under)),
        "searches_with_distractor": int((np.asarray(under) > 0).sum()),
    }


def mates_among_unfitted_distractors(real, identities, n, rng) -> dict:
    """Exact search (NumPy) of each real photo, leave-one-out, among its person's other photos, the other
    people's photos and n - len(real) distractors drawn from a Gaussian fitted WITHOUT that person: the
    rank of the first true mate and the distractors under the threshold. A fair model: a person is not in
    the distribution the distractors come from."""
    from search.faces import engine_threshold

    threshold = engine_threshold(ENGINE)
    ranks, under = [], []
    people = sorted(set(identities))
    for person in progress(people, desc="Distractors fitted without the probe's person", unit="person"):
        own = [i for i, who in enumerate(identities) if who == person]
        others = real[[who != person for who in identities]]
        closer_than_mate = dict.fromkeys(own, 0)
        below = dict.fromkeys(own, 0)
        for chunk in range(0, n - len(real), 200_000):
            size = min(200_000, n - len(real) - chunk)
            drawn = rng.multivariate_normal(others.mean(axis=0), shrunk_covariance(others), size=size).astype(
                np.float32
            )
            for i in own:
                mate = min(float(distances(real[j : j + 1], real[i])[0]) for j in own if j != i)
                d = distances(drawn, real[i])
                closer_than_mate[i] += int((d < mate).sum())
                below[i] += int((d < threshold).sum())
        for i in own:
            mate = min(float(distances(real[j : j + 1], real[i])[0]) for j in own if j != i)
            closer_than_mate[i] += int((distances(others, real[i]) < mate).sum())
            ranks.append(closer_than_mate[i] + 1)
            under.append(below[i])
    ranks, under = np.asarray(ranks), np.asarray(under)
    return {
        "threshold": threshold,
        "probes": len(ranks),
        "rank1": int((ranks == 1).sum()),
        "rank10": int((ranks <= 10).sum()),
        "worst_rank": int(ranks.max()),
        "under_mean": float(under.mean()),
        "under_max": int(under.max()),
        "searches_with_distractor": int((under > 0).sum()),
    }


# ---------------------------------------------------------------------------------------------------------
# Batch enrolment and the whole probe pipeline, against the gallery built above


def photos_at_most_1024(folder: Path, copies: int) -> list[Path]:
    """The shared photos scaled to ≤ 1024 px, `copies` times (each copy re-encoded a little differently,
    so that none is skipped as a duplicate)."""
    from PIL import Image, ImageOps

    paths = []
    for copy in range(copies):
        for source in sorted((Path(settings.FACES_DIR) / "pairs").glob("*.jpg")):
            image = ImageOps.exif_transpose(Image.open(source)).convert("RGB")
            image.thumbnail((1024, 1024))
            path = folder / f"{copy}-{source.name}"
            image.save(path, "JPEG", quality=92 - copy)
            paths.append(path)
    return paths


def enrolment_rate(workers: int, paths: list[Path]) -> dict:
    from accounts.models import Agency
    from search.enrolment import EnrolmentItem, gallery_enrol_batch, gallery_get_or_create

    gallery, _ = gallery_get_or_create(
        owner=Agency.objects.get(slug="bench"),
        name=f"Enrolment with {workers} workers {time.time():.0f}",
        legal_basis="Synthetic benchmark data",
        source_type="booking",
        responsible_person="Bench",
        retention_days=30,
    )
    gallery.engine = ENGINE
    gallery.save(update_fields=["engine"])
    items = [EnrolmentItem(path=str(path), display_name=path.stem) for path in paths]
    started = time.perf_counter()
    with tqdm(total=len(items), desc=f"Enrolling with {workers} worker(s)", unit="photo", file=sys.stderr) as bar:
        summary = gallery_enrol_batch(
            gallery=gallery, gallery_created=True, items=items, workers=workers, progress=lambda item: bar.update(1)
        )
    seconds = time.perf_counter() - started
    return {
        "workers": workers,
        "photos": len(items),
        "faces": summary.faces_enrolled,
        "seconds": seconds,
        "rate": summary.faces_enrolled / seconds,
    }


def pipeline_latency(paths: list[Path]) -> dict:
    """search_job_run (what the worker runs: decode → detect → embed → search → render → store) on
    one-face photos ≤ 1024 px, in this warm process, over every gallery of the benchmark."""
    from accounts.models import Agency, Role, User
    from portal.services import case_create
    from search.models import OffenseCategory, SearchJob
    from search.pipeline import search_job_run
    from search.services import probe_submit

    agency = Agency.objects.get(slug="bench")
    officer = User.objects.filter(username="bench-officer").first() or User.objects.create_user(
        username="bench-officer", password=None, role=Role.OFFICER, agency=agency
    )
    case = case_create(created_by=officer, number=f"BENCH-{time.time():.0f}", title="Pipeline benchmark")
    OffenseCategory.objects.get_or_create(name="Robbery")
    totals, stages = [], {}
    engine = get_engine(ENGINE)
    one_face = [path for path in paths if len(PhotoFaces(decode_photo(path.read_bytes()).image, engine).find()) == 1]
    runs = one_face[:3] + one_face  # the first three warm the process and are not counted
    for number, path in enumerate(progress(runs, desc="Probe pipeline", unit="probe")):
        job = probe_submit(
            case=case,
            uploaded_by=officer,
            data=path.read_bytes(),
            original_name=path.name,
            purpose="Robbery",
            justification="Benchmark of the whole probe pipeline",
        )
        started = time.perf_counter()
        search_job_run(job_id=job.id)
        elapsed = (time.perf_counter() - started) * 1000
        job = SearchJob.objects.get(pk=job.id)
        if number < 3 or job.status != SearchJob.Status.DONE:
            continue
        totals.append(elapsed)
        for stage, ms in (job.stage_ms or {}).items():
            stages.setdefault(stage, []).append(ms)
    return {"probes": len(totals), "totals": totals, "stages": stages}


# ---------------------------------------------------------------------------------------------------------


def mb(size: int) -> str:
    return f"{size / 1024 / 1024:,.0f} MB"


def main() -> None:
    started_all = time.perf_counter()
    call_command("migrate", verbosity=0)
    rng = np.random.default_rng(20261123)
    real, files, identities = real_descriptors()
    mates = mate_distances(real, identities)
    mate_median = float(np.median(mates))
    n = ARGS.n
    layout = gallery_layout(n, len(real))
    from search.models import Gallery

    reused = ARGS.reuse and Gallery.objects.filter(name__startswith="Synthetic").count() == 3
    if reused:
        gallery_ids = {name: Gallery.objects.get(name=f"Synthetic {name}").id for name in GALLERY_SHARES}
        load_s, build_s = figure("load_s"), figure("build_s")
    if ARGS.pipeline and reused:
        report_pipeline()
    if ARGS.skip_searches and reused:
        return finish()
    vectors = np.vstack([real, synthetic_distractors(real, n - len(real), rng)])
    if not reused:
        gallery_ids, load_s = load_gallery(vectors, layout)
        print(
            f"loaded {n:,} faces in {load_s:.0f} s; building HNSW m {M}, ef_construction {EF_CONSTRUCTION}",
            file=sys.stderr,
        )
        build_s = build_index()
        figure("load_s", load_s)
        figure("build_s", build_s)
        print(f"built in {build_s:.0f} s", file=sys.stderr)
        if ARGS.pipeline:
            report_pipeline()
        if ARGS.skip_searches:
            return finish()
    on_disk = sizes()
    face_ids = face_ids_by_ordinal(n, list(gallery_ids.values()))
    ordinal_of = {int(face_id): ordinal for ordinal, face_id in enumerate(face_ids)}
    probes, sources, exclude = make_probes(vectors, layout, len(real), mate_median, rng)

    results = []  # (filter, ef_search, rerank, latencies, top1, recall10, found)
    exact_full = None
    for label, galleries in FILTERS.items():
        if FILTER_CODES[label] not in ARGS.filters.split(","):
            continue
        allowed = np.arange(n) if galleries is None else np.flatnonzero(np.isin(layout, galleries))
        exact_ids, exact_d = exact_top(vectors, allowed, probes, exclude, TOP_K)
        if galleries is None:
            exact_full = (exact_ids, exact_d)
        ids = None if galleries is None else [gallery_ids[name] for name in galleries]
        if ids is not None:
            with connection.cursor() as cursor:
                if estimated_faces(cursor, ids) <= EXACT_MAX:
                    label = f"{label} (read exactly)"
        if "read exactly" not in label and not index_in_plan(probes[0], ids):
            label = f"{label} (the planner chose no index)"
        for ef in EF_SEARCH_VALUES:
            for rerank in RERANK_VALUES:
                setting = f"ef_search {ef}" + (f", F {rerank}" if INDEX != "vector" else "")
                latencies, found = run_searches(
                    f"{label}, {setting}", probes, exclude, face_ids, ordinal_of, ids, ef=ef, rerank=rerank
                )
                top1, recall = agreement(found, exact_ids, exact_d, vectors, probes)
                misses = np.flatnonzero(found[:, 0] != exact_ids[:, 0])
                print(
                    f"  top-1 differs for {(misses < len(real)).sum()} real and {(misses >= len(real)).sum()}"
                    f" jittered probes; e.g. {[(int(i), float(exact_d[i, 0])) for i in misses[:5]]}",
                    file=sys.stderr,
                )
                cpu = CPU_MS[f"{label}, {setting}"]
                buffers = BUFFERS[f"{label}, {setting}"]
                results.append((label, ef, rerank, latencies, top1, recall, found, cpu, buffers))
                print(
                    f"  {label:15} {setting}: p50 {percentile(latencies, 50):6.2f} ms,"
                    f" p95 {percentile(latencies, 95):6.2f},"
                    f" p99 {percentile(latencies, 99):6.2f}; CPU p50 {percentile(cpu, 50):6.2f},"
                    f" p95 {percentile(cpu, 95):6.2f}; buffers p50 {percentile(buffers, 50):.0f};"
                    f" top-1 {top1:.4%}, recall@10 {recall:.4f}",
                    file=sys.stderr,
                )
    memory = postgres_memory()
    unfiltered = [r for r in results if r[0] == "unfiltered"]
    product_unfiltered = unfiltered[-1] if unfiltered else None

    print(f"\n### make bench-scale N={n} ENGINE={ARGS.engine} — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n")
    print(
        f"Machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()},"
        f" PostgreSQL {connection.cursor().connection.info.server_version // 10000}, engine {ENGINE}"
        f" ({METRIC}); load average at the start {LOAD_AT_START}, at the end {load_average()}.\n"
    )
    print(f"Variant: {variant_description()}.\n")
    print(
        f"Gallery: {n:,} faces = {len(real)} real descriptors of the shared photos + {n - len(real):,} synthetic"
        " (Gaussian with the mean and Ledoit-Wolf covariance of the real ones); galleries of 1 % / 19 % / 80 %."
        f" Probes: {len(probes):,}"
        f" ({len(real)} real photos leave-one-out + {len(probes) - len(real):,} gallery members jittered by"
        f" {mate_median:.3f}, the median distance between two real photos of one person).\n"
    )
    memo = (
        f"- Load (COPY + rows): {load_s:.0f} s; vector index build: {build_s:.0f} s\n"
        f"- On disk: descriptors {mb(on_disk['table'])}, vector index {mb(on_disk['hnsw'])},"
        f" descriptors with all their indexes {mb(on_disk['table with indexes'])}, database"
        f" {mb(on_disk['database'])}\n"
        f"- PostgreSQL memory after the searches: {mb(memory['pss_sum'])} (PSS summed over"
        f" {memory['processes']} processes), largest RSS {mb(memory['rss_max'])};"
        f" shared_buffers {connection_setting('shared_buffers')}\n"
    )
    if LAYOUT == "partitioned":
        memo += "- Leaves holding faces: " + ", ".join(f"{name} {count:,}" for name, count in leaves()) + "\n"
    print(memo)
    print(
        "Latency by the clock (p50 / p95 / p99) and by CPU (p50 / p95: the PostgreSQL backend's run time plus"
        " this process's, per search; what a search costs when no other work shares the cores); buffers: the"
        " shared buffers a search touches (median of 200, EXPLAIN ANALYZE), its cost in pages on any machine.\n"
    )
    print(
        "| search | ef_search | F | p50 ms | p95 ms | p99 ms | CPU p50 ms | CPU p95 ms | buffers | top-1 = exact"
        " | top-10 recall |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, ef, rerank, latencies, top1, recall, _, cpu, buffers in results:
        print(
            f"| {label} | {ef} | {rerank if INDEX != 'vector' else '–'} | {percentile(latencies, 50):.2f}"
            f" | {percentile(latencies, 95):.2f} | {percentile(latencies, 99):.2f}"
            f" | {percentile(cpu, 50):.2f} | {percentile(cpu, 95):.2f} | {percentile(buffers, 50):,.0f}"
            f" | {top1:.2%} ({round(top1 * len(probes))}/{len(probes)}) | {recall:.4f} |"
        )
    if not ARGS.skip_accuracy and product_unfiltered is not None:
        peer = peer_search_ms(vectors, probes[: ARGS.peer_probes])
        in_gallery = mates_in_gallery(vectors, identities, len(real), exact_full[0], product_unfiltered[6])
        fair = mates_among_unfitted_distractors(real, identities, n, rng)
        report_accuracy(n, peer, product_unfiltered, in_gallery, fair)
    print(f"Whole run: {time.perf_counter() - started_all:.0f} s.")
    finish()


def report_accuracy(n, peer, product_unfiltered, in_gallery, fair) -> None:
    ratio = percentile(peer, 50) / percentile(product_unfiltered[3], 50)
    print(
        f"\nBrute-force peer (NumPy distance to all {n:,} float64 descriptors, as `face_recognition` does),"
        f" {len(peer)} probes: p50 {percentile(peer, 50):.1f} ms, p95 {percentile(peer, 95):.1f} ms —"
        f" {ratio:.0f}× the product's unfiltered p50 at ef_search {product_unfiltered[1]}.\n"
    )
    print(
        f"Accuracy against gallery size ({n:,} faces, synthetic distractors, threshold {fair['threshold']}),"
        f" each real photo searched leave-one-out:\n"
    )
    print(
        f"- distractors fitted without the probe's person (NumPy, exact): true mate at rank 1 for"
        f" {fair['rank1']}/{fair['probes']}, in the top 10 for {fair['rank10']}/{fair['probes']} (worst rank"
        f" {fair['worst_rank']}); distractors under the threshold per search: mean {fair['under_mean']:.2f},"
        f" max {fair['under_max']}, in {fair['searches_with_distractor']}/{fair['probes']} searches;"
    )
    print(
        f"- the benchmark's gallery (distractors fitted to every photo, the probe's person included: pessimistic):"
        f" rank 1 for {in_gallery['exact_rank1']}/{in_gallery['probes']} by exact search,"
        f" {in_gallery['product_rank1']}/{in_gallery['probes']} by the product; distractors under the threshold"
        f" per search: mean {in_gallery['under_mean']:.1f}, in {in_gallery['searches_with_distractor']}/"
        f"{in_gallery['probes']} searches.\n"
    )


def variant_description() -> str:
    layout = (
        f"descriptor table partitioned by engine, then HASH (gallery_id) MODULUS {HASH_PARTITIONS}, an index per leaf"
        if LAYOUT == "partitioned"
        else "the face table with a partial index per engine"
    )
    kind = {
        "vector": "HNSW on the full vectors",
        "halfvec": "HNSW on halfvec (half precision), F × over-fetch re-ranked by the full-precision distance",
        "binary": "HNSW on binary_quantize() (Hamming), F × over-fetch re-ranked by the full-precision distance",
    }[INDEX]
    return (
        f"{layout}; {kind}; m {M}, ef_construction {EF_CONSTRUCTION}, iterative scan {ITERATIVE_SCAN};"
        f" top {TOP_K} profiles from {TOP_K * index.OVERFETCH} faces; a filtered search reads the allowed faces"
        f" exactly when the planner estimates ≤ {EXACT_MAX:,}"
    )


def load_average() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def figure(name: str, value: float | None = None) -> float:
    """A figure of the build kept in the bench database, so a --reuse run reports it too."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_figure (name text PRIMARY KEY, value float8)")
        if value is not None:
            cursor.execute(
                "INSERT INTO bench_figure VALUES (%s, %s) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                [name, value],
            )
            return value
        cursor.execute("SELECT value FROM bench_figure WHERE name = %s", [name])
        row = cursor.fetchone()
    return float("nan") if row is None else row[0]


def finish() -> None:
    from portal.celery import app

    with app.connection_for_write() as conn:  # the probes' messages, never meant for a worker
        conn.default_channel.queue_purge(settings.CELERY_TASK_DEFAULT_QUEUE)
    if not ARGS.keep:
        connection.close()
        stop_bench_server(delete=True)


def report_pipeline() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        paths = photos_at_most_1024(Path(folder), copies=1)
        latency = pipeline_latency(paths)
        rates = []
        for workers in (1, os.cpu_count() or 1):
            (Path(folder) / f"w{workers}").mkdir()
            rates.append(enrolment_rate(workers, photos_at_most_1024(Path(folder) / f"w{workers}", copies=6)))
    from search.models import FaceImage

    # The enrolled photos leave the gallery again, so the searches below compare the same faces as exact search.
    FaceImage.objects.exclude(gallery__name__startswith="Synthetic").delete()
    print(
        f"\n### make bench-scale N={ARGS.n} ENGINE={ARGS.engine} ARGS=--pipeline —"
        f" {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n"
    )
    print(
        f"Whole probe pipeline (search_job_run in a warm process: decode → detect → embed → search over the"
        f" {ARGS.n:,}-face gallery → render crops → store candidates), {latency['probes']} one-face shared photos"
        f" ≤ 1024 px, engine {ENGINE}:\n"
    )
    print(
        f"- total: p50 {percentile(latency['totals'], 50):.0f} ms, p95 {percentile(latency['totals'], 95):.0f} ms,"
        f" max {max(latency['totals']):.0f} ms"
    )
    print(
        "- by stage (p50 / p95 ms): "
        + ", ".join(
            f"{stage} {percentile(values, 50):.0f} / {percentile(values, 95):.0f}"
            for stage, values in latency["stages"].items()
        )
    )
    print(
        "\nBatch enrolment (gallery_enrol_batch, as enroll_gallery runs it) of the shared photos ≤ 1024 px,"
        " six differently re-encoded copies each (the worker processes' start included),"
        " into a new gallery of this database (its HNSW index"
        " updated on every insert):\n"
    )
    print("| worker processes | photos | faces enrolled | seconds | faces / s |\n|---:|---:|---:|---:|---:|")
    for rate in rates:
        print(
            f"| {rate['workers']} | {rate['photos']} | {rate['faces']} | {rate['seconds']:.1f} | {rate['rate']:.1f} |"
        )


def connection_setting(name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SHOW {name}")
        return cursor.fetchone()[0]


if __name__ == "__main__":
    main()
