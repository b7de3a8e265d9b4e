"""Multi-host drill: searches from two agencies through a web host and two worker hosts, a worker host and the
read replica killed mid-run; every search finishes exactly once with the candidates one box gives.

Topology, every part a real server or process: gunicorn serving portal.wsgi on a free loopback port; two
Celery workers and Celery beat, each a process with its own working directory, PORTAL_VAR_DIR, MEDIA_ROOT and
TMPDIR (empty temporary folders: no two share a file); the embedded PostgreSQL (the test database) as the
primary and a streaming replica made from it with pg_basebackup (DATABASE_REPLICA_URLS); SeaweedFS as the
media store (MEDIA_S3_*); a Valkey broker of the drill's own. Officers submit and poll through the REST API
with their own tokens.

The reference is the ordinary single-box path: the same photos searched first in this process (the local
media folder, no replica, no worker), against the same galleries and the same calibration.

Size: CLUSTER_DRILL_SEARCHES (20 in the test suite; `make drill-cluster` runs 100). CLUSTER_DRILL_WITHOUT=s3
and/or replica runs without that server, to tell a failure of the drill from one of a server (the web and
workers then share one media folder, as on one box); the summary says so. CLUSTER_DRILL_KEEP=1 keeps the
hosts' folders, logs and the servers' data.
"""

from __future__ import annotations

import ast
import base64
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import requests
from django.db import connection
from django.db.models import Count

from accounts.models import Role
from accounts.services import agency_create, user_create
from accounts.tokens import api_token_create
from portal.celery import app
from portal.models import AuditEntry
from portal.services import case_create
from search import pipeline
from search.enrolment import gallery_get_or_create
from search.models import Candidate, FaceImage, ProbeFace, SearchJob
from search.services import probe_submit
from search.workers import worker_consuming_search_queue
from tests.base import GALLERY_PROVENANCE, PASSWORD, faces_dir, identities
from tests.e2e.cluster import (
    ApiClient,
    BeatHostProcess,
    Host,
    WebProcess,
    WorkerHostProcess,
    cluster_env,
    database_url,
)
from tests.e2e.drill import SEARCH_TASK, drill_broker_running
from tests.servers.replica import StreamingReplica
from tests.servers.seaweedfs import SeaweedS3

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SEARCHES = int(os.environ.get("CLUSTER_DRILL_SEARCHES", "20"))
WITHOUT = {part.strip() for part in os.environ.get("CLUSTER_DRILL_WITHOUT", "").split(",") if part.strip()}
KEEP = bool(os.environ.get("CLUSTER_DRILL_KEEP"))

# Test-only timeouts for every host (production defaults: 5, 30, 15, 120, 450, 600 s).
DRILL_TIMEOUTS = {
    "SEARCH_HEARTBEAT_SECONDS": 1,
    "SEARCH_STALE_SECONDS": 5,
    "SEARCH_SWEEP_SECONDS": 2,
    "SEARCH_TIME_LIMIT_SECONDS": 15,  # soft limit 5 s; a search here takes under a second
    "VIDEO_TIME_LIMIT_SECONDS": 16,
    "CELERY_VISIBILITY_TIMEOUT": 20,
}
# Six officers poll every POLL_SECONDS and upload back to back: far above any officer's pace, so the web
# host's per-token limits are lifted for the drill (the limits have their own tests).
WEB_LIMITS = {"API_RATE_PER_MINUTE": 10_000, "UPLOADS_PER_MINUTE": 1_000}
# The worker host that is killed pauses inside each search, so that it is killed mid-search, not between two.
DOOMED = {"SEARCH_DRILL_PAUSE_SECONDS": 1}
POLL_SECONDS = 0.2
OFFICERS_PER_AGENCY = 3
PURPOSE = "Robbery"
JUSTIFICATION = "Suspect of a robbery seen on the station's camera."
DISTANCE_TOLERANCE = 1e-4
# Bounds: one search, from upload to done, even the one whose worker was killed (stale after 5 s, swept
# within 2 s, then run again); the whole run of searches, generous for a shared 2-core machine.
SEARCH_WITHIN_SECONDS = 90
RUN_WITHIN_SECONDS = 60 + 3 * SEARCHES
# The test suite's size must fit the CI budget of the drill: 4 minutes, servers and set-up included.
CI_WITHIN_SECONDS = 240


@dataclass(frozen=True)
class GallerySpec:
    owner: str
    name: str
    people: dict[str, list[str]]  # display name → enrolled photos (pairs/)
    shared_with: tuple[str, ...] = ()


# P06 is in both agencies' own galleries (different photos): a search that read the other agency's gallery
# would show it. The state gallery is North's, shared with South: both may search it.
GALLERIES = (
    GallerySpec(
        "north",
        "North bookings",
        {
            "P01": ["img10.jpg"],
            "P02": ["img44.jpg"],
            "P03": ["img51.jpg"],
            "P04": ["img12.jpg"],
            "P06": ["img62.jpg"],
            "P07": ["img29.jpg"],
        },
    ),
    GallerySpec(
        "south",
        "South bookings",
        {
            "P06": ["img16.jpg"],
            "P08": ["img34.jpg"],
            "P09": ["img38.jpg"],
            "P10": ["img18.jpg"],
            "P11": ["img20.jpg"],
            "P13": ["img25.jpg"],
        },
    ),
    GallerySpec("north", "State wanted persons", {"P05": ["img14.jpg"], "P12": ["img22.jpg"]}, ("south",)),
)
# Probes per agency: other photos of people it may search, a person only the other agency holds, strangers
# (openset/). Taken in this order, round robin, so that a small drill still has every kind.
PROBES = {
    "north": [
        "img5.jpg",
        "img46.jpg",
        "openset/clapton-2.jpg",
        "img50.jpg",
        "img61.jpg",
        "img36.jpg",
        "img53.jpg",
        "img30.jpg",
        "img15.jpg",
        "openset/adams.jpg",
        "img11.jpg",
        "img43.jpg",
        "img8.jpg",
    ],
    "south": [
        "img17.jpg",
        "img37.jpg",
        "openset/lennon-1.jpg",
        "img21.jpg",
        "img24.jpg",
        "img6.jpg",
        "img19.jpg",
        "img57.jpg",
        "img39.jpg",
        "openset/carell.jpg",
        "img23.jpg",
        "img59.jpg",
        "img36.jpg",
    ],
}
AGENCY_NAMES = {"north": "North Police", "south": "South Constabulary"}


def photo_path(name: str) -> Path:
    return faces_dir().parent / name if name.startswith("openset/") else faces_dir() / name


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    statuses = dict(SearchJob.objects.values_list("status").annotate(n=Count("id")).order_by())
    raise AssertionError(f"{what}: not within {timeout} s; jobs {statuses}")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


# --- What the drill sets up ------------------------------------------------------------------


@dataclass
class Agency:
    slug: str
    agency: object
    admin_token: str
    officer_tokens: list[str]
    reference_officer: object
    galleries: dict[str, object] = field(default_factory=dict)  # name → Gallery it owns
    may_search: set[int] = field(default_factory=set)  # gallery ids


def agencies_set_up() -> dict[str, Agency]:
    """Two agencies with an admin, officers with API tokens, and their galleries (empty: enrolled over HTTP)."""
    agencies = {}
    for slug, name in AGENCY_NAMES.items():
        agency = agency_create(slug=slug, name=name, seats=10)
        admin = user_create(username=f"{slug}-admin", password=PASSWORD, role=Role.AGENCY_ADMIN, agency=agency)
        officers = [
            user_create(username=f"{slug}-officer-{n}", password=PASSWORD, role=Role.OFFICER, agency=agency)
            for n in range(1, OFFICERS_PER_AGENCY + 1)
        ]
        reference = user_create(username=f"{slug}-reference", password=PASSWORD, role=Role.OFFICER, agency=agency)
        agencies[slug] = Agency(
            slug=slug,
            agency=agency,
            admin_token=api_token_create(user=admin, name="cluster drill").token,
            officer_tokens=[api_token_create(user=officer, name="cluster drill").token for officer in officers],
            reference_officer=reference,
        )
    for spec in GALLERIES:
        owner = agencies[spec.owner]
        gallery, created = gallery_get_or_create(
            owner=owner.agency, name=spec.name, legal_basis="Test act", **GALLERY_PROVENANCE
        )
        assert created
        owner.galleries[spec.name] = gallery
        owner.may_search.add(gallery.id)
        for slug in spec.shared_with:
            gallery.shared_with.add(agencies[slug].agency)
            agencies[slug].may_search.add(gallery.id)
    return agencies


def galleries_enrol(web_url: str, agencies: dict[str, Agency]) -> int:
    """Every gallery photo enrolled by its agency's admin through the web host; the faces enrolled."""
    enrolled = 0
    for spec in GALLERIES:
        owner = agencies[spec.owner]
        admin = ApiClient(web_url, owner.admin_token)
        for person, photos in spec.people.items():
            answer = admin.gallery_enrol(
                str(owner.galleries[spec.name].code),
                display_name=person,
                photos=[photo_path(name) for name in photos],
            )
            assert answer["enrolled"] == len(photos), answer
            enrolled += answer["enrolled"]
    return enrolled


# --- Results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaceResult:
    index: int
    decision: str
    candidates: tuple[tuple[int, int, int, float], ...]  # (rank, profile id, face image id, distance)


def job_results(job_id: int) -> tuple[FaceResult, ...]:
    """A done job's faces and candidates, checked to be one set: faces 1..n, per face ranks 1..k, one row per
    profile and per gallery face."""
    job = SearchJob.objects.get(pk=job_id)
    faces = list(ProbeFace.objects.filter(probe_id=job.probe_id).order_by("index"))
    assert [face.index for face in faces] == list(range(1, len(faces) + 1)), (job_id, faces)
    results = []
    for face in faces:
        rows = list(
            Candidate.objects.filter(job_id=job_id, probe_face=face)
            .order_by("rank")
            .values_list("rank", "profile_id", "face_image_id", "distance")
        )
        assert [rank for rank, *_ in rows] == list(range(1, len(rows) + 1)), (job_id, rows)
        assert len({profile for _, profile, *_ in rows}) == len(rows), (job_id, rows)
        assert len({image for *_, image, _ in rows}) == len(rows), (job_id, rows)
        results.append(FaceResult(face.index, face.decision, tuple(rows)))
    # No candidate row hangs off another probe face (an interrupted run's leftovers).
    assert Candidate.objects.filter(job_id=job_id).count() == sum(len(r.candidates) for r in results), job_id
    return tuple(results)


def differences(got: tuple[FaceResult, ...], expected: tuple[FaceResult, ...]) -> float:
    """The largest distance difference; fails unless faces, decisions, ranks, profiles and faces agree."""
    assert [(f.index, f.decision) for f in got] == [(f.index, f.decision) for f in expected]
    largest = 0.0
    for face, reference in zip(got, expected, strict=True):
        assert [row[:3] for row in face.candidates] == [row[:3] for row in reference.candidates]
        for row, reference_row in zip(face.candidates, reference.candidates, strict=True):
            largest = max(largest, abs(row[3] - reference_row[3]))
    assert largest <= DISTANCE_TOLERANCE, largest
    return largest


def reference_run(agencies: dict[str, Agency], photos: dict[str, list[str]]) -> dict[tuple[str, str], tuple]:
    """The single-box path: each photo searched in this process, local media, the primary, no worker."""
    reference = {}
    for slug, names in photos.items():
        officer = agencies[slug].reference_officer
        case = case_create(created_by=officer, number=f"{slug.upper()}-REF", title="One-box reference")
        for name in names:
            job = probe_submit(
                case=case,
                uploaded_by=officer,
                data=photo_path(name).read_bytes(),
                purpose=PURPOSE,
                justification=JUSTIFICATION,
                face_choice={"mode": "all"},  # as the API searches
            )
            pipeline.search_job_run(job_id=job.id)
            job.refresh_from_db()
            assert job.status == SearchJob.Status.DONE, (name, job.error)
            reference[(slug, name)] = job_results(job.id)
    return reference


# --- The officers ----------------------------------------------------------------------------


@dataclass
class Search:
    number: int
    agency: str
    photo: str
    code: str = ""
    submitted_at: float = 0.0  # monotonic, before the upload
    seen_done_at: float = 0.0  # monotonic, the poll that saw it finished
    status: str = ""
    api_faces: list = field(default_factory=list)


def search_plan(count: int) -> list[Search]:
    """Searches alternate between the agencies; each agency's probes in turn."""
    plan = []
    for number in range(count):
        slug = ("north", "south")[number % 2]
        photos = PROBES[slug]
        plan.append(Search(number=number, agency=slug, photo=photos[(number // 2) % len(photos)]))
    return plan


class Officer(threading.Thread):
    """Uploads its searches one after the other through the API, polling each until it is finished."""

    def __init__(self, client: ApiClient, searches_url: str, searches: list[Search]):
        super().__init__(daemon=True)
        self.client, self.searches_url, self.searches = client, searches_url, searches
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for search in self.searches:
                search.submitted_at = time.monotonic()
                answer = self.client.search_submit(
                    self.searches_url, photo_path(search.photo), purpose=PURPOSE, justification=JUSTIFICATION
                )
                search.code = answer["id"]
                while not answer["finished"]:
                    if time.monotonic() - search.submitted_at > SEARCH_WITHIN_SECONDS:
                        raise AssertionError(f"search {search.code} not finished within {SEARCH_WITHIN_SECONDS} s")
                    time.sleep(POLL_SECONDS)
                    answer = self.client.get(answer["url"])
                search.seen_done_at = time.monotonic()
                search.status = answer["status"]
                search.api_faces = self.client.get(answer["results_url"])["faces"]
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            self.error = exc


def active_search_job(worker: WorkerHostProcess) -> int | None:
    """The search job the worker runs now, by its own answer over the broker."""
    replies = app.control.inspect(destination=[worker.name], timeout=1.0, limit=1).active() or {}
    for task in replies.get(worker.name, []):
        if task.get("name") == SEARCH_TASK:
            args = task.get("args")
            args = ast.literal_eval(args) if isinstance(args, str) else args
            job_id = args[0]
            if SearchJob.objects.filter(pk=job_id, status=SearchJob.Status.RUNNING).exists():
                return job_id
    return None


def unacknowledged_search(broker, job_id: int) -> tuple[str, float]:
    """The task id of a search message delivered for that job and not acknowledged, and when it was delivered."""
    client = broker.client()
    for tag, raw in client.hgetall("unacked").items():
        message = json.loads(raw)[0]  # [message, exchange, routing key]
        if message["headers"]["task"] == SEARCH_TASK and json.loads(base64.b64decode(message["body"]))[0] == [job_id]:
            return message["headers"]["id"], client.zscore("unacked_index", tag)
    raise AssertionError(f"no unacknowledged message for job {job_id}")


def received(worker: WorkerHostProcess, task_id: str) -> bool:
    """Whether the worker received that task message (Celery logs each one it takes)."""
    return any(f"[{task_id}] received" in record.get("message", "") for record in worker.log_records())


def process_group_left(pgid: int) -> list[int]:
    """The processes of a process group still running (a killed one may linger as a zombie until reaped)."""
    left = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state not in ("Z", "X"):
            left.append(int(stat.parent.name))
    return left


# --- The servers -----------------------------------------------------------------------------


@pytest.fixture
def drill_clock() -> float:
    """When the drill began: before its servers start (requested first)."""
    return time.monotonic()


@pytest.fixture
def drill_root():
    root = Path(tempfile.mkdtemp(prefix="cluster-drill-"))  # short: sockets live under it
    yield root
    if KEEP:
        print(f"\nkept the drill's hosts, servers and logs in {root}")
        return
    for _ in range(3):  # a server's last files may still be going away while the tree is walked
        shutil.rmtree(root, ignore_errors=True)
        if not root.exists():
            break
        time.sleep(0.5)


@pytest.fixture
def drill_broker(clean_test_broker):
    with drill_broker_running("cluster-broker-") as broker:
        yield broker


@pytest.fixture
def object_store(drill_root):
    if "s3" in WITHOUT:
        yield None
        return
    store = SeaweedS3(drill_root / "s3").start()
    yield store
    store.stop()


@pytest.fixture
def replica(drill_root, transactional_db):
    if "replica" in WITHOUT:
        yield None
        return
    server = StreamingReplica(drill_root / "replica").start()
    yield server
    server.stop()


def replica_search_reads(replica, database: str) -> int:
    """Scans of the search tables the replica answered itself (statistics are kept per server)."""
    with psycopg.connect(replica.url(database), autocommit=True, connect_timeout=5) as conn:
        return conn.execute(
            "SELECT coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0) FROM pg_stat_user_tables "
            "WHERE relname LIKE 'search\\_%'"
        ).fetchone()[0]


def readiness(web: WebProcess) -> dict:
    return requests.get(f"{web.url}/readyz", timeout=30).json()


def stored_in_bucket(name: str, keys: set[str]) -> bool:
    return name in keys or any(key.endswith("/" + name) for key in keys)


@dataclass
class Figures:
    """What the summary reports."""

    web_url: str = ""
    phases: dict[str, float] = field(default_factory=dict)
    victim: int = 0
    done_at_worker_kill: int = 0
    victim_done_after: float = 0.0
    rejoined_with: int = 0
    redelivered_to: list[str] = field(default_factory=list)
    done_at_replica_kill: int | None = None
    replica_scans: int | None = None
    primary_after_replica_kill: int = 0
    run_seconds: float = 0.0
    drill_seconds: float = 0.0
    largest_difference: float = 0.0
    mates: tuple[int, int] = (0, 0)
    per_worker: dict[str, int] = field(default_factory=dict)


# --- The drill -------------------------------------------------------------------------------


def test_searches_through_a_web_host_and_two_worker_hosts_end_once_with_the_one_box_candidates_through_a_worker_and_a_replica_killed(  # noqa: E501
    drill_clock, drill_root, drill_broker, object_store, replica
):
    drill_started = drill_clock
    figures = Figures()
    agencies = agencies_set_up()
    database = connection.settings_dict["NAME"]
    extra = dict(DRILL_TIMEOUTS)
    if object_store is not None:
        extra |= object_store.media_env(deployment_id="cluster-drill")
    if replica is not None:
        extra["DATABASE_REPLICA_URLS"] = replica.url(database)
    shared = cluster_env(
        database_url=database_url(connection.settings_dict),
        broker_url=drill_broker.url,
        # The API's rate counters, shared by every web host: the drill's own Valkey, another database.
        cache_url=f"unix://{drill_broker.socket}?db=1",
        extra=extra,
    )
    # Without object storage the hosts share one media folder, as processes on one box do.
    shared_media = None if object_store is not None else drill_root / "shared-media"
    hosts = {
        name: Host(drill_root, name, media_root=shared_media) for name in ("web-1", "worker-1", "worker-2", "beat")
    }
    plan = search_plan(SEARCHES)
    processes = []
    try:
        web = WebProcess(hosts["web-1"], shared | WEB_LIMITS)
        processes.append(web)
        web.wait_ready()
        figures.web_url = web.url
        figures.phases["servers"] = time.monotonic() - drill_started

        mark = time.monotonic()
        gallery_faces = galleries_enrol(web.url, agencies)
        cases = {
            slug: [
                ApiClient(web.url, token).case_create(number=f"{slug.upper()}-{n}", title="Cluster drill")
                for n, token in enumerate(agency.officer_tokens, start=1)
            ]
            for slug, agency in agencies.items()
        }
        figures.phases["enrolment"] = time.monotonic() - mark

        mark = time.monotonic()
        used = {slug: sorted({s.photo for s in plan if s.agency == slug}) for slug in agencies}
        reference = reference_run(agencies, used)
        reference_jobs = set(SearchJob.objects.values_list("pk", flat=True))
        drill_broker.client().flushdb()  # the reference's messages: its searches are done already
        figures.phases["reference"] = time.monotonic() - mark

        mark = time.monotonic()
        processes.append(BeatHostProcess(hosts["beat"], shared))
        doomed = WorkerHostProcess(hosts["worker-1"], shared | DOOMED)
        survivor = WorkerHostProcess(hosts["worker-2"], shared)
        processes += [doomed, survivor]
        for worker in (doomed, survivor):
            wait_until(
                lambda worker=worker: worker.alive() and worker_consuming_search_queue(worker_name=worker.name),
                120,
                f"{worker.host.name} consuming\n{worker.log_tail()}",
                interval=0.5,
            )
        figures.phases["workers"] = time.monotonic() - mark
        ready = readiness(web)
        assert ready["status"] == "ok", ready  # the bucket, the replica and the workers all answer

        # Each officer takes every third search of its agency.
        officers = []
        for slug, agency in agencies.items():
            mine = [s for s in plan if s.agency == slug]
            for n, token in enumerate(agency.officer_tokens):
                officers.append(
                    Officer(ApiClient(web.url, token), cases[slug][n]["searches_url"], mine[n::OFFICERS_PER_AGENCY])
                )
        run_started = time.monotonic()
        for officer in officers:
            officer.start()

        def cluster_done() -> int:
            return SearchJob.objects.filter(status=SearchJob.Status.DONE).exclude(pk__in=reference_jobs).count()

        # A worker host lost mid-search, once both hosts have done some: SIGKILL to its process group (the
        # pool child with it).
        kill_worker_after = max(3, SEARCHES // 5)
        wait_until(
            lambda: cluster_done() >= kill_worker_after and len(doomed.jobs_finished()) >= 2,
            RUN_WITHIN_SECONDS,
            "searches before the kill",
        )
        victim = wait_until(lambda: active_search_job(doomed), 60, "a search running on worker-1", interval=0.05)
        doomed.kill()
        worker_killed_at = time.time()
        figures.victim, figures.done_at_worker_kill = victim, cluster_done()
        # The host's every process is gone, the pool child included (a SIGKILL takes a moment to land).
        wait_until(lambda: process_group_left(doomed.pid) == [], 5, "worker-1's processes gone")
        assert SearchJob.objects.get(pk=victim).status == SearchJob.Status.RUNNING  # killed mid-search
        # Its message stays with the broker, unacknowledged, until the visibility timeout has passed; the sweeper
        # hands the search to the survivor long before.
        held_task, delivered_at = unacknowledged_search(drill_broker, victim)
        visible_again = delivered_at + DRILL_TIMEOUTS["CELERY_VISIBILITY_TIMEOUT"] + 1

        # The replica lost: searches go on against the primary.
        if replica is not None:
            kill_replica_after = max(kill_worker_after + 3, SEARCHES // 2)
            wait_until(lambda: cluster_done() >= kill_replica_after, RUN_WITHIN_SECONDS, "searches, replica kill")
            figures.replica_scans = replica_search_reads(replica, database)
            assert figures.replica_scans > 0  # searches read from the replica until now
            replica.kill()
            figures.done_at_replica_kill = cluster_done()
            ready = readiness(web)
            assert ready["status"] == "degraded" and not ready["checks"]["replica_1"]["ok"], ready

        # The killed host comes back once its message is visible again (mid-run in a long drill, after it in a
        # short one) and takes its share. A worker restores such messages when it starts (a running one only
        # every ~100 s: kombu's unacked_restore_interval × unacked_restore_throttle); the search is done, so the
        # message runs to nothing.
        time.sleep(max(0.0, visible_again - time.time()))
        returned = WorkerHostProcess(hosts["worker-1"], shared, role="worker-returned")
        processes.append(returned)
        figures.rejoined_with = cluster_done()

        for officer in officers:
            officer.join(max(1.0, RUN_WITHIN_SECONDS - (time.monotonic() - run_started)))
            assert not officer.is_alive(), "an officer's searches did not finish in time"
            assert officer.error is None, officer.error
        figures.run_seconds = max(search.seen_done_at for search in plan) - run_started
        figures.victim_done_after = SearchJob.objects.get(pk=victim).finished_at.timestamp() - worker_killed_at
        assert survivor.alive() and returned.alive()

        figures.phases["run and rejoin"] = time.monotonic() - run_started
        mark = time.monotonic()
        wait_until(
            lambda: drill_broker.messages() == {"waiting": 0, "unacked": 0},
            60,
            f"the broker drained (see {returned.log})",
            interval=0.5,
        )
        figures.phases["drain"] = time.monotonic() - mark
    finally:
        for process in reversed(processes):
            process.stop()

    # --- Every search finished exactly once, with the one-box candidates --------------------
    jobs = {str(job.code): job for job in SearchJob.objects.exclude(pk__in=reference_jobs).select_related("probe")}
    assert sorted(jobs) == sorted(s.code for s in plan)
    assert {job.status for job in jobs.values()} == {SearchJob.Status.DONE}, [
        (job.pk, job.status, job.error) for job in jobs.values() if job.status != SearchJob.Status.DONE
    ]
    assert {s.status for s in plan} == {SearchJob.Status.DONE}
    rerun = {job.pk for job in jobs.values() if job.attempts > 1}
    assert rerun == {victim}, rerun  # the interrupted search ran again, and no other
    assert max(job.attempts for job in jobs.values()) == 2
    mates_first, mates = 0, 0
    for search in plan:
        job = jobs[search.code]
        assert AuditEntry.objects.filter(action=AuditEntry.Action.SEARCH_RESULTS, target_id=str(job.pk)).count() == 1, (
            job.pk
        )
        got = job_results(job.pk)
        figures.largest_difference = max(
            figures.largest_difference, differences(got, reference[(search.agency, search.photo)])
        )
        # What the officer read through the API is what was stored.
        assert [[(c["rank"], c["profile_id"]) for c in face["candidates"]] for face in search.api_faces] == [
            [(rank, profile) for rank, profile, *_ in face.candidates] for face in got
        ]
        # Only galleries the agency may search.
        images = [image for face in got for *_, image, _ in face.candidates]
        galleries = set(FaceImage.objects.filter(pk__in=images).values_list("gallery_id", flat=True))
        assert galleries <= agencies[search.agency].may_search, (search.agency, galleries)
        person = identity_of(search.photo)
        if person and any(person in spec.people and spec_searchable(spec, search.agency) for spec in GALLERIES):
            mates += 1
            top = Candidate.objects.filter(job=job, rank=1).values_list("profile__display_name", flat=True).first()
            mates_first += top == person
    figures.mates = (mates_first, mates)

    # --- Media: in the bucket, on no host -----------------------------------------------------
    stored = {
        "probes": [job.probe.image.name for job in jobs.values()],
        "crops": list(ProbeFace.objects.filter(probe__jobs__in=jobs.values()).values_list("crop", flat=True)),
        "gallery photos": list(FaceImage.objects.values_list("image", flat=True)),
    }
    assert len(stored["gallery photos"]) == gallery_faces
    if object_store is not None:
        keys = set(object_store.keys())
        for kind, names in stored.items():
            missing = [name for name in names if not stored_in_bucket(name, keys)]
            assert names and not missing, (kind, missing[:5])
        for host in hosts.values():
            assert host.media_files() == [], (host.name, host.media_files()[:5])
            assert host.image_files() == [], (host.name, host.image_files()[:5])
    else:
        held = {str(p.relative_to(shared_media)) for p in shared_media.rglob("*") if p.is_file()}
        assert all(name in held for names in stored.values() for name in names)

    # --- Who did what ------------------------------------------------------------------------
    workers = {"worker-1": doomed, "worker-2": survivor, "worker-1 (back)": returned}
    finished_by = {host: worker.jobs_finished() for host, worker in workers.items()}
    everything = [job_id for done in finished_by.values() for job_id in done]
    assert sorted(everything) == sorted(job.pk for job in jobs.values())  # each ran to its end once, on one host
    assert victim in finished_by["worker-2"]  # the survivor ran the interrupted search
    assert finished_by["worker-1"], "the killed worker ran searches before it was killed"
    # The killed host's message was delivered again, and ran to nothing (the search was done: attempts 2 above).
    figures.redelivered_to = [
        host for host, worker in workers.items() if host != "worker-1" and received(worker, held_task)
    ]
    assert figures.redelivered_to, f"task {held_task} was not delivered again"
    figures.per_worker = {host: len(done) for host, done in finished_by.items()}
    if replica is not None:
        figures.primary_after_replica_kill = sum(
            record.get("logger") == "portal.db_routing" and record.get("message", "").startswith("Reads go to default")
            for worker in (survivor, returned)
            for record in worker.log_records()
        )
        assert figures.primary_after_replica_kill >= 1  # the searches after the kill passed the replica over

    figures.drill_seconds = time.monotonic() - drill_started
    summary_print(figures, plan, jobs, object_store=object_store, replica=replica)
    assert figures.run_seconds <= RUN_WITHIN_SECONDS
    if SEARCHES <= 20:
        assert figures.drill_seconds <= CI_WITHIN_SECONDS, f"{figures.drill_seconds:.0f} s: over the CI budget"


def summary_print(figures: Figures, plan: list[Search], jobs: dict, *, object_store, replica) -> None:
    latencies = [s.seen_done_at - s.submitted_at for s in plan]
    stored_after = [(job.finished_at - job.created_at).total_seconds() for job in jobs.values()]
    running = [(job.finished_at - job.started_at).total_seconds() for job in jobs.values()]
    media = "SeaweedFS media" if object_store is not None else "one shared media folder (CLUSTER_DRILL_WITHOUT=s3)"
    replicas = "a streaming replica" if replica is not None else "no replica (CLUSTER_DRILL_WITHOUT=replica)"
    lines = [
        f"cluster drill: {len(plan)} searches ({sum(s.agency == 'north' for s in plan)} North, "
        f"{sum(s.agency == 'south' for s in plan)} South) by {OFFICERS_PER_AGENCY * 2} officers through the API "
        f"of {figures.web_url}; 2 worker hosts + beat, {media}, {replicas}",
        f"  every search done once, candidates as on one box (largest distance difference "
        f"{figures.largest_difference:.1e}); mates at rank 1: {figures.mates[0]}/{figures.mates[1]}",
        f"  worker-1 SIGKILLed (its process group) with {figures.done_at_worker_kill} done and job {figures.victim} "
        f"mid-search: run again on worker-2, done {figures.victim_done_after:.1f} s after the kill; worker-1 back "
        f"with {figures.rejoined_with} done; its unacknowledged message delivered again (to "
        f"{', '.join(figures.redelivered_to)}) and ran to nothing",
    ]
    if replica is not None:
        lines.append(
            f"  replica SIGKILLed with {figures.done_at_replica_kill} done, after answering {figures.replica_scans} "
            f"scans of the search tables; {figures.primary_after_replica_kill} searches passed it over for the "
            f"primary after it; /readyz degraded"
        )
    lines += [
        "  searches per worker: " + ", ".join(f"{host} {count}" for host, count in figures.per_worker.items()),
        f"  upload → officer sees done: p50 {statistics.median(latencies):.2f} s, "
        f"p95 {percentile(latencies, 0.95):.2f} s (polling every {POLL_SECONDS} s); upload → stored result: "
        f"p50 {statistics.median(stored_after):.2f} s, p95 {percentile(stored_after, 0.95):.2f} s; "
        f"running p50 {statistics.median(running):.2f} s",
        f"  run {figures.run_seconds:.1f} s; drill {figures.drill_seconds:.0f} s ("
        + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in figures.phases.items())
        + ")",
    ]
    print("\n" + "\n".join(lines))


def identity_of(photo: str) -> str | None:
    return None if photo.startswith("openset/") else identities().get(photo)


def spec_searchable(spec: GallerySpec, agency: str) -> bool:
    return spec.owner == agency or agency in spec.shared_with
