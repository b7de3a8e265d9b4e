"""The only module that runs pgvector queries."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import connections, transaction

from portal import db_routing
from search.faces import ENGINES
from search.models import DESCRIPTOR_HASH_MODULUS, HNSW_EF_CONSTRUCTION, HNSW_M

# Distance operator per engine metric (the registry's); the HNSW index of each engine's partition uses the same one.
_OPERATORS = {"euclidean": "<->", "cosine": "<=>"}
OPCLASSES = {"euclidean": "vector_l2_ops", "cosine": "vector_cosine_ops"}
# Several photos of one profile may be near the probe; fetch more faces than candidates wanted.
OVERFETCH = 5


def hnsw_parameters(engine: str) -> dict[str, int]:
    return {"m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION}


def descriptor_leaves(engine: str) -> list[tuple[str, str]]:
    """(leaf partition, its HNSW index) of the engine's partition, one per hash remainder of the gallery."""
    entry = ENGINES[engine]
    return [
        (f"{entry.partition}_{remainder}", f"{entry.hnsw_index}_{remainder}")
        for remainder in range(DESCRIPTOR_HASH_MODULUS)
    ]


def hnsw_create_sql(engine: str, *, m: int, ef_construction: int) -> str:
    """The HNSW index of one engine's partition, as the migrations create it (for bulk loads and benchmarks): the
    partitioned index on the engine's partition, then one index per leaf, built and attached one by one."""
    entry = ENGINES[engine]
    using = (
        f"USING hnsw (embedding {OPCLASSES[entry.metric]})"
        f" WITH (m = {int(m)}, ef_construction = {int(ef_construction)})"
    )
    statements = [f"CREATE INDEX {entry.hnsw_index} ON ONLY {entry.partition} {using}"]
    for leaf, leaf_index in descriptor_leaves(engine):
        statements += [
            f"CREATE INDEX {leaf_index} ON {leaf} {using}",
            f"ALTER INDEX {entry.hnsw_index} ATTACH PARTITION {leaf_index}",
        ]
    return ";\n".join(statements)


def partition_sizes(engine: str) -> tuple[int, int]:
    """Bytes on disk of the engine's partition (its leaves' rows) and of its HNSW index (every leaf's)."""
    entry = ENGINES[engine]
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT COALESCE(SUM(pg_table_size(relid)), 0) FROM pg_partition_tree(%s::regclass) WHERE isleaf),"
            " (SELECT COALESCE(SUM(pg_relation_size(relid)), 0) FROM pg_partition_tree(%s::regclass) WHERE isleaf)",
            [entry.partition, entry.hnsw_index],
        )
        table, hnsw = cursor.fetchone()
    return int(table), int(hnsw)


def _read_connection():
    """Where this read goes: a replica inside a replica scope (portal/db_routing.py), else the primary."""
    return connections[db_routing.read_alias()]


@dataclass(frozen=True)
class Hit:
    face_image_id: int
    profile_id: int
    distance: float


def _vector_literal(embedding: np.ndarray) -> str:
    return "[" + ",".join(f"{float(v):.7g}" for v in embedding) + "]"


def nearest_profiles(
    embedding: np.ndarray,
    *,
    engine: str,
    gallery_ids: list[int] | None,
    limit: int,
    exclude_face_image_ids: tuple[int, ...] = (),
    include_minors: bool = False,
) -> list[Hit]:
    """The nearest face of each of the `limit` nearest profiles, among the given galleries (None: all of them,
    for the privacy officer's search across agencies).

    Minors (held only in missing-person galleries) are returned only to missing-person searches.
    """
    if engine not in ENGINES:
        raise ValueError(f"Unknown engine {engine!r}")
    if (gallery_ids is not None and not gallery_ids) or limit < 1:
        return []
    operator = _OPERATORS[ENGINES[engine].metric]
    minors = "" if include_minors else " AND NOT minor_at_enrolment"
    galleries = "" if gallery_ids is None else " AND gallery_id = ANY(%(galleries)s)"
    # The engine name is a literal from the registry above and the galleries a list, so the planner keeps only
    # the engine's partition and, in it, the leaves the galleries hash to, each with its own HNSW index;
    # everything else is a bound parameter.
    where = f"engine = '{engine}'{galleries} AND NOT (face_image_id = ANY(%(exclude)s)){minors}"
    distance = f"embedding {operator} %(probe)s::vector"
    params = {
        "probe": _vector_literal(embedding),
        "galleries": list(gallery_ids or []),
        "exclude": list(exclude_face_image_ids),
        "limit": limit * OVERFETCH,
    }
    database = _read_connection()
    with transaction.atomic(using=database.alias), database.cursor() as cursor:
        if gallery_ids is not None and _estimated_faces(cursor, engine, gallery_ids) <= settings.EXACT_SEARCH_MAX_FACES:
            # Few faces allowed: reading them all and sorting them is exact and faster than walking the graphs
            # until enough of them turn up (the bench-scale figures are in docs/scaling.md). The OFFSET 0 fence
            # keeps the planner from ordering through the leaves' HNSW indexes, which under the Merge Append of
            # partitions it does even with enable_indexscan off.
            sql = f"""
                SELECT face_image_id, profile_id, distance FROM (
                    SELECT face_image_id, profile_id, {distance} AS distance
                    FROM search_facedescriptor WHERE {where} OFFSET 0
                ) AS allowed
                ORDER BY distance LIMIT %(limit)s
            """
        else:
            sql = f"""
                SELECT face_image_id, profile_id, {distance} AS distance
                FROM search_facedescriptor WHERE {where}
                ORDER BY {distance} LIMIT %(limit)s
            """
            cursor.execute("SET LOCAL hnsw.ef_search = %s", [max(settings.HNSW_EF_SEARCH, limit * OVERFETCH)])
            # pgvector 0.8: keep scanning the index until enough rows pass the gallery filter.
            cursor.execute("SELECT set_config('hnsw.iterative_scan', %s, true)", [settings.HNSW_ITERATIVE_SCAN])
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    best: dict[int, Hit] = {}
    for face_image_id, profile_id, distance in rows:
        if profile_id not in best:
            best[profile_id] = Hit(face_image_id, profile_id, float(distance))
    return sorted(best.values(), key=lambda hit: hit.distance)[:limit]


def _estimated_faces(cursor, engine: str, gallery_ids: list[int]) -> int:
    """The planner's estimate of the faces of these galleries (from the leaves' statistics; ~0.3 ms)."""
    cursor.execute(
        "EXPLAIN (FORMAT JSON) SELECT 1 FROM search_facedescriptor WHERE engine = %s AND gallery_id = ANY(%s)",
        [engine, list(gallery_ids)],
    )
    plan = cursor.fetchone()[0]
    plan = plan if isinstance(plan, list) else json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def distance_between(face_image_id_a: int, face_image_id_b: int, *, engine: str) -> float:
    """Distance between two stored gallery descriptors of one engine, computed by the database."""
    operator = _OPERATORS[ENGINES[engine].metric]
    with _read_connection().cursor() as cursor:
        cursor.execute(
            f"SELECT a.embedding {operator} b.embedding FROM search_facedescriptor a, search_facedescriptor b"
            " WHERE a.face_image_id = %s AND b.face_image_id = %s AND a.engine = %s AND b.engine = %s",
            [face_image_id_a, face_image_id_b, engine, engine],
        )
        row = cursor.fetchone()
    if row is None:
        raise ValueError("Both face images must exist and share an engine")
    return float(row[0])


def gallery_faces_count(*, engine: str, gallery_ids: list[int]) -> int:
    """How many faces of that engine the galleries hold (the N a search compares the probe with)."""
    if not gallery_ids:
        return 0
    with _read_connection().cursor() as cursor:
        estimate = _estimated_faces(cursor, engine, gallery_ids)
        if estimate > settings.EXACT_SEARCH_MAX_FACES:
            return estimate  # counting a large gallery exactly costs more than the threshold gains from it
        cursor.execute(
            "SELECT COUNT(*) FROM search_facedescriptor WHERE engine = %s AND gallery_id = ANY(%s)",
            [engine, list(gallery_ids)],
        )
        return int(cursor.fetchone()[0])


def gallery_signature(*, engine: str, gallery_ids: list[int]) -> str:
    """What the galleries hold, in a word: changes when a face of that engine is added or removed."""
    with _read_connection().cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*), COALESCE(MAX(face_image_id), 0), COALESCE(SUM(face_image_id), 0)"
            " FROM search_facedescriptor WHERE engine = %s AND gallery_id = ANY(%s)",
            [engine, list(gallery_ids)],
        )
        count, newest, total = cursor.fetchone()
    return f"{sorted(gallery_ids)}:{count}:{newest}:{total}"


@dataclass(frozen=True)
class ImpostorSample:
    pairs: int  # pairs of faces of different profiles in the sample
    lowest: list[tuple[float, int, int]]  # (distance, profile a, profile b), ascending, at most `lowest`


def gallery_impostor_sample(*, engine: str, gallery_ids: list[int], max_pairs: int, lowest: int) -> ImpostorSample:
    """Distances between faces of different profiles of the galleries: every pair, or when there are more
    than max_pairs, every pair among a random sample of faces (√(2·max_pairs) of them)."""
    if engine not in ENGINES or not gallery_ids:
        return ImpostorSample(0, [])
    operator = _OPERATORS[ENGINES[engine].metric]
    max_faces = max(2, int((2 * max_pairs) ** 0.5))
    sql = f"""
        WITH faces AS (
            SELECT face_image_id, profile_id, embedding FROM search_facedescriptor
            WHERE engine = '{engine}' AND gallery_id = ANY(%(galleries)s)
            ORDER BY random() LIMIT %(max_faces)s
        ), pairs AS (
            SELECT a.embedding {operator} b.embedding AS distance, a.profile_id AS pa, b.profile_id AS pb
            FROM faces a JOIN faces b ON a.face_image_id < b.face_image_id AND a.profile_id <> b.profile_id
        )
        SELECT (SELECT COUNT(*) FROM pairs), distance, pa, pb FROM pairs ORDER BY distance LIMIT %(lowest)s
    """
    database = _read_connection()
    with transaction.atomic(using=database.alias), database.cursor() as cursor:
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute(sql, {"galleries": list(gallery_ids), "max_faces": max_faces, "lowest": max(lowest, 1)})
        rows = cursor.fetchall()
    if not rows:
        return ImpostorSample(0, [])
    return ImpostorSample(int(rows[0][0]), [(float(d), int(a), int(b)) for _, d, a, b in rows])


@dataclass(frozen=True)
class TombstoneHit:
    tombstone_id: int
    request_id: int | None
    distance: float


def nearest_tombstone(embedding: np.ndarray, *, engine: str) -> TombstoneHit | None:
    """The closest erased face of that engine (which one, and whose request), or None when there is none."""
    if engine not in ENGINES:
        raise ValueError(f"Unknown engine {engine!r}")
    operator = _OPERATORS[ENGINES[engine].metric]
    with _read_connection().cursor() as cursor:
        cursor.execute(
            f"SELECT id, request_id, embedding {operator} %s::vector AS distance FROM search_tombstone"
            " WHERE engine = %s ORDER BY distance LIMIT 1",
            [_vector_literal(embedding), engine],
        )
        row = cursor.fetchone()
    return None if row is None else TombstoneHit(int(row[0]), row[1], float(row[2]))


def nearest_tombstones(embeddings: list[np.ndarray], *, engine: str) -> list[TombstoneHit | None]:
    """nearest_tombstone of each descriptor, in one query (a batch of enrolments): the same query per descriptor."""
    if engine not in ENGINES:
        raise ValueError(f"Unknown engine {engine!r}")
    if not embeddings:
        return []
    operator = _OPERATORS[ENGINES[engine].metric]
    with _read_connection().cursor() as cursor:
        cursor.execute(
            "SELECT probe.number, nearest.id, nearest.request_id, nearest.distance"
            " FROM unnest(%s::text[]) WITH ORDINALITY AS probe(vector, number)"
            f" CROSS JOIN LATERAL (SELECT id, request_id, embedding {operator} probe.vector::vector AS distance"
            " FROM search_tombstone WHERE engine = %s ORDER BY distance LIMIT 1) AS nearest",
            [[_vector_literal(embedding) for embedding in embeddings], engine],
        )
        found = {
            int(number): TombstoneHit(int(id_), request_id, float(distance))
            for number, id_, request_id, distance in cursor.fetchall()
        }
    return [found.get(number) for number in range(1, len(embeddings) + 1)]
