"""Read replicas against a real hot standby streaming from the test run's PostgreSQL (tests/servers/replica.py):
where the search's reads go (the job-LSN rule), what the searches and /readyz do when the replica is paused,
killed or silent, and that writes and the job's own rows never touch it."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import time_machine
from django.conf import settings
from django.db import connections, transaction
from django.test import SimpleTestCase, TransactionTestCase, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from portal import db_routing
from portal.celery import app
from portal.settings import database_from_url
from search import index, pipeline
from search.enrolment import EnrolmentItem, gallery_enrol_batch, gallery_get_or_create
from search.models import Candidate, Gallery, OffenseCategory, SearchJob
from search.services import probe_submit
from search.usage import usage_report
from tests.base import GALLERY_PROVENANCE, AgencyFixtureMixin, faces_dir, photo_bytes
from tests.portal.test_health import HeartbeatKey
from tests.servers.replica import StreamingReplica

GALLERY = {"P01": ["img1.jpg", "img2.jpg"], "P02": ["img16.jpg"], "P03": ["img22.jpg"]}
REPLICA = "replica_1"
# The job's own tables: never read from a replica.
JOB_TABLES = ("search_searchjob", "search_probe", "search_probeface", "search_candidate")


def replica_attach(alias: str, url: str, *, connect_timeout: int | None = None) -> None:
    """Add a replica alias as DATABASE_REPLICA_URLS would, pointing at the test run's database on it."""
    config = database_from_url(url, "DATABASE_REPLICA_URLS")
    config["NAME"] = settings.DATABASES["default"]["NAME"]
    config["OPTIONS"] = config["OPTIONS"] | {
        "connect_timeout": connect_timeout or settings.DATABASE_REPLICA_CONNECT_TIMEOUT
    }
    config["TEST"] = {"MIRROR": "default"}
    # connections.settings is settings.DATABASES: the router sees the alias as well.
    connections.settings[alias] = connections.configure_settings(
        {"default": connections.settings["default"], alias: config}
    )[alias]


def replica_detach(alias: str) -> None:
    connections[alias].close()
    del connections[alias]
    del connections.settings[alias]


def offense_categories_seed() -> None:
    """The offense categories a migration adds, which a transactional test's flush removes."""
    migration = importlib.import_module("search.migrations.0004_offense_categories")
    for name in migration.CATEGORIES:
        OffenseCategory.objects.get_or_create(name=name, defaults={"is_missing_person": name == "Missing person"})


class MigrationDataKept:
    """A transactional test that leaves the test database with its migrations' rows (a later run with
    --reuse-db starts from them)."""

    def _fixture_teardown(self):
        super()._fixture_teardown()
        offense_categories_seed()


def replica_rows(replica: StreamingReplica, sql: str, params=()) -> list[tuple]:
    with replica.connect(settings.DATABASES["default"]["NAME"]) as conn:
        return conn.execute(sql, params).fetchall()


# The replica is chosen after the faces are found, and must have replayed the job's claim by then: a pause after
# detection keeps a loaded test machine from turning that into a race (the rule itself is the product's).
@override_settings(SEARCH_DRILL_PAUSE_SECONDS=0.5)
class ReplicaTestCase(MigrationDataKept, AgencyFixtureMixin, TransactionTestCase):
    """TransactionTestCase: a replica sees only what the primary has committed. The replica alias is a test
    mirror, so the test run neither creates nor flushes a database through it."""

    databases = {"default", REPLICA}

    @classmethod
    def setUpClass(cls):
        cls.replica_dir = Path(tempfile.mkdtemp(prefix="portal-replica-test-"))
        cls.addClassCleanup(shutil.rmtree, cls.replica_dir, ignore_errors=True)
        # Made after the test database exists: physical replication copies every database of the primary.
        cls.replica = StreamingReplica(cls.replica_dir / "standby").start()
        replica_attach(REPLICA, cls.replica.url("unused"))
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            replica_detach(REPLICA)
            cls.replica.stop()

    def setUp(self):
        offense_categories_seed()  # a transactional test run before this one may have flushed them
        self.create_agencies()
        gallery, _ = gallery_get_or_create(
            owner=self.north, name="North bookings", legal_basis="Test act", **GALLERY_PROVENANCE
        )
        items = [
            EnrolmentItem(path=str(faces_dir() / name), display_name=who)
            for who, names in GALLERY.items()
            for name in names
        ]
        summary = gallery_enrol_batch(gallery=gallery, gallery_created=True, items=items)
        self.assertEqual(summary.faces_enrolled, 4, summary.as_dict())
        self.gallery = gallery
        db_routing.forget_down()
        self.addCleanup(db_routing.forget_down)
        db_routing.recent_choices.clear()
        self.addCleanup(app.control.purge)  # the searches submitted were published to the test queue

    def submit(self, name: str = "img5.jpg") -> SearchJob:
        return probe_submit(case=self.case, uploaded_by=self.alice, data=photo_bytes(name))

    def run_search(self, job: SearchJob) -> db_routing.ReplicaChoice:
        """Run the job here as a worker would; the routing choice its search stage made."""
        db_routing.recent_choices.clear()
        pipeline.search_job_run(job_id=job.id)
        job.refresh_from_db()
        self.assertEqual(job.status, SearchJob.Status.DONE, job.error)
        self.assertEqual(len(db_routing.recent_choices), 1)
        return db_routing.recent_choices[-1]

    @staticmethod
    def candidates(job: SearchJob) -> list[tuple]:
        return list(
            Candidate.objects.filter(job=job)
            .order_by("probe_face__index", "rank")
            .values_list("rank", "profile__display_name", "face_image_id", "distance", "likely")
        )


class ReadReplicaTests(ReplicaTestCase):
    def test_a_caught_up_replica_serves_the_search_with_the_primarys_results(self):
        job = self.submit()
        self.replica.wait_caught_up()
        scans_before = self.descriptor_scans_on_replica()
        with (
            CaptureQueriesContext(connections[REPLICA]) as on_replica,
            CaptureQueriesContext(connections["default"]) as on_primary,
        ):
            choice = self.run_search(job)
        self.assertEqual((choice.alias, choice.skipped, choice.fell_back), (REPLICA, {}, False))
        self.assertGreater(choice.reads[REPLICA], 0)
        replica_sql = [query["sql"] for query in on_replica.captured_queries]
        # The vector search: the graph's query or the exact read of few faces.
        vector_search = re.compile(r"FROM search_facedescriptor .*ORDER BY", re.S)
        self.assertTrue([sql for sql in replica_sql if vector_search.search(sql)])
        # The replica's own statistics count the scans of the faces table the search made there.
        connections[REPLICA].close()
        self.assertGreater(self.descriptor_scans_on_replica(wait_above=scans_before), scans_before)
        # The job's own rows are read (and every row written) on the primary only.
        self.assertFalse([sql for sql in replica_sql if any(table in sql for table in JOB_TABLES)])
        self.assertFalse(
            [sql for sql in replica_sql if sql.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]
        )
        primary_sql = [query["sql"] for query in on_primary.captured_queries]
        self.assertTrue(any("search_searchjob" in sql and "FOR UPDATE" in sql for sql in primary_sql))
        self.assertFalse([sql for sql in primary_sql if vector_search.search(sql)])

        replica_found = self.candidates(job)
        self.assertEqual(replica_found[0][:2], (1, "P01"))
        # The same photo searched with no replica configured: on the primary, the very same candidates.
        replica_detach(REPLICA)
        self.addCleanup(replica_attach, REPLICA, self.replica.url("unused"))
        on_primary_job = self.submit()
        self.assertEqual(self.run_search(on_primary_job).alias, "default")
        self.assertEqual(self.candidates(on_primary_job), replica_found)

    def descriptor_scans_on_replica(self, wait_above: int | None = None) -> int:
        # A session's statistics reach the shared ones when it ends; wait for that after closing it.
        deadline = time.monotonic() + 10
        while True:
            (scans,) = replica_rows(
                self.replica,
                # The descriptors' leaves (search_facedescriptor_<engine>_<n>): where the vector search reads.
                "SELECT coalesce(sum(coalesce(seq_scan, 0) + coalesce(idx_scan, 0)), 0)::bigint"
                " FROM pg_stat_user_tables WHERE relname ~ '^search_facedescriptor_'",
            )[0]
            if wait_above is None or scans > wait_above or time.monotonic() > deadline:
                return scans
            time.sleep(0.1)

    def test_a_replica_behind_the_jobs_commit_is_passed_over_for_the_primary(self):
        self.replica.wait_caught_up()
        self.replica.pause_replay()
        self.addCleanup(self.replica.resume_replay)
        job = self.submit()
        # The replica has not replayed the job's commit: it does not even know the job.
        self.assertEqual(
            replica_rows(self.replica, "SELECT count(*) FROM search_searchjob WHERE id = %s", [job.id]), [(0,)]
        )
        with CaptureQueriesContext(connections[REPLICA]) as on_replica:
            choice = self.run_search(job)
        self.assertEqual(choice.alias, "default")
        self.assertRegex(choice.skipped[REPLICA], r"^behind: replayed [0-9A-F]+/[0-9A-F]+, needs [0-9A-F]+/[0-9A-F]+$")
        self.assertEqual(choice.reads[REPLICA], 0)
        self.assertFalse([q for q in on_replica.captured_queries if "search_facedescriptor" in q["sql"]])
        self.assertEqual(self.candidates(job)[0][:2], (1, "P01"))

        # Once it has caught up, the next search is its again.
        self.replica.resume_replay()
        later = self.submit()
        self.replica.wait_caught_up()
        self.assertEqual(self.run_search(later).alias, REPLICA)
        self.assertEqual(self.candidates(later), self.candidates(job))

    def test_writes_in_a_replica_scope_go_to_the_primary(self):
        self.replica.wait_caught_up()
        with db_routing.replica_reads() as choice:
            gallery = Gallery.objects.get(pk=self.gallery.pk)  # read on the replica
            self.assertEqual((choice.alias, gallery._state.db), (REPLICA, REPLICA))
            gallery.name = "North bookings (renamed)"
            gallery.save()  # a standby refuses any write: this one must reach the primary
            Gallery.objects.filter(pk=gallery.pk).update(legal_basis="Renamed act")
        self.assertEqual(
            Gallery.objects.using("default").values_list("name", "legal_basis").get(pk=gallery.pk),
            ("North bookings (renamed)", "Renamed act"),
        )

    def test_reads_inside_a_transaction_on_the_primary_see_its_own_writes(self):
        self.replica.wait_caught_up()
        with db_routing.replica_reads() as choice, transaction.atomic():
            Gallery.objects.filter(pk=self.gallery.pk).update(name="Written just now")
            self.assertEqual(Gallery.objects.get(pk=self.gallery.pk).name, "Written just now")
            self.assertEqual(index.gallery_faces_count(engine=self.gallery.engine, gallery_ids=[self.gallery.pk]), 4)
        self.assertEqual(choice.reads, {"default": 2})
        self.assertIsNone(choice.alias)  # no read needed a replica, so none was chosen

    def test_outside_a_scope_every_read_is_the_primarys(self):
        self.replica.wait_caught_up()
        with CaptureQueriesContext(connections[REPLICA]) as on_replica:
            self.assertEqual(Gallery.objects.get(pk=self.gallery.pk)._state.db, "default")
            index.gallery_faces_count(engine=self.gallery.engine, gallery_ids=[self.gallery.pk])
        self.assertEqual(on_replica.captured_queries, [])

    def test_the_usage_report_reads_a_caught_up_replica(self):
        self.submit()
        year = timezone.now().year
        with CaptureQueriesContext(connections[REPLICA]) as on_replica:
            report = usage_report(year=year, agency_id=self.north.id)  # the scope's LSN is read now: it waits
        choice = db_routing.recent_choices[-1]
        self.assertIn(choice.alias, (REPLICA, "default"))
        if choice.alias == "default":
            # The submission had not been replayed yet: the primary answered, as the LSN rule says.
            self.assertTrue(choice.skipped[REPLICA].startswith("behind"))
            self.replica.wait_caught_up()
            report = usage_report(year=year, agency_id=self.north.id)
            self.assertEqual(db_routing.recent_choices[-1].alias, REPLICA)
        else:
            self.assertTrue(any("portal_auditentry" in q["sql"] for q in on_replica.captured_queries))
        self.assertEqual(report["searches"]["total"], 1)


class ReplicaOutageTests(ReplicaTestCase):
    def setUp(self):
        super().setUp()
        if not self.replica.running():
            self.replica.restart()  # killed by the test before

    def readyz(self) -> dict:
        response = self.client.get("/readyz")
        self.assertEqual(response.status_code, 200)
        return response.json()

    def test_a_killed_replica_leaves_searches_to_the_primary_and_readyz_degraded(self):
        self.replica.wait_caught_up()
        with HeartbeatKey():
            before = self.readyz()
            self.assertEqual(before["status"], "ok", before)
            self.assertTrue(before["checks"][REPLICA]["ok"])
            self.assertRegex(before["checks"][REPLICA]["detail"], r"^replica_1 answers, replays \d+ bytes")

            self.replica.kill()
            job = self.submit()
            choice = self.run_search(job)
            self.assertEqual(choice.alias, "default")
            self.assertEqual(choice.skipped, {REPLICA: "cannot be reached (OperationalError)"})
            self.assertEqual(self.candidates(job)[0][:2], (1, "P01"))

            after = self.readyz()
        self.assertEqual(after["status"], "degraded")
        self.assertEqual(
            after["checks"][REPLICA],
            {"ok": False, "detail": "replica_1 cannot be reached (OperationalError): searches use the primary"},
        )
        self.assertTrue(after["checks"]["database"]["ok"])

        # Remembered as down: the next search does not try it again until the retry time has gone by.
        with db_routing.replica_reads() as choice:
            db_routing.read_alias()
        self.assertEqual(choice.skipped, {REPLICA: "down (remembered)"})
        later = timezone.now() + timedelta(seconds=settings.DATABASE_REPLICA_RETRY_SECONDS + 1)
        with time_machine.travel(later), db_routing.replica_reads() as choice:
            db_routing.read_alias()
        self.assertEqual(choice.skipped, {REPLICA: "cannot be reached (OperationalError)"})

        # Back again: once the retry time has gone by, it serves searches again.
        self.replica.restart()
        self.replica.wait_caught_up()
        with time_machine.travel(later + timedelta(seconds=settings.DATABASE_REPLICA_RETRY_SECONDS + 1)):
            self.assertEqual(self.run_search(self.submit()).alias, REPLICA)

    def test_a_replica_that_dies_during_the_search_stage_is_read_again_on_the_primary(self):
        self.replica.wait_caught_up()
        engine, gallery_ids = self.gallery.engine, [self.gallery.pk]
        runs = []

        def read():
            runs.append(db_routing.read_alias())
            name = Gallery.objects.get(pk=self.gallery.pk).name
            if len(runs) == 1:
                self.replica.kill()
            return name, index.gallery_faces_count(engine=engine, gallery_ids=gallery_ids)

        self.assertEqual(db_routing.replica_read(read), ("North bookings", 4))
        self.assertEqual(runs, [REPLICA, "default"])
        choice = db_routing.recent_choices[-1]
        self.assertTrue(choice.fell_back)
        with db_routing.replica_reads() as next_choice:
            db_routing.read_alias()
        self.assertEqual(next_choice.skipped, {REPLICA: "down (remembered)"})


class SilentReplicaTests(MigrationDataKept, TransactionTestCase):
    """A replica address where something accepts connections and never answers (a hung host)."""

    databases = {"default", REPLICA}

    @classmethod
    def setUpClass(cls):
        cls.listener = socket.socket()
        cls.listener.bind(("127.0.0.1", 0))
        cls.listener.listen(1)  # never accepted: a connection waits for the server's first word for ever
        port = cls.listener.getsockname()[1]
        replica_attach(REPLICA, f"postgresql://postgres@127.0.0.1:{port}/x", connect_timeout=1)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            replica_detach(REPLICA)
            cls.listener.close()

    def setUp(self):
        db_routing.forget_down()
        self.addCleanup(db_routing.forget_down)

    def test_it_is_given_up_after_the_connect_timeout_and_then_remembered(self):
        started = time.monotonic()
        with db_routing.replica_reads() as choice:
            self.assertEqual(Gallery.objects.count(), 0)
        waited = time.monotonic() - started
        self.assertEqual((choice.alias, choice.skipped), ("default", {REPLICA: "cannot be reached (OperationalError)"}))
        self.assertLess(waited, 5)
        started = time.monotonic()
        with db_routing.replica_reads() as choice:
            self.assertEqual(Gallery.objects.count(), 0)
        self.assertEqual(choice.skipped, {REPLICA: "down (remembered)"})
        self.assertLess(time.monotonic() - started, 0.5)  # no second wait
        body = self.client.get("/readyz").json()
        self.assertEqual(body["status"], "degraded")
        self.assertEqual(body["checks"][REPLICA]["ok"], False)


def settings_in_a_process(replica_urls: str) -> subprocess.CompletedProcess:
    """portal/settings.py read by a process of its own with DATABASE_REPLICA_URLS set."""
    probe = (
        "import json, django; django.setup(); from django.conf import settings as s;"
        "print(json.dumps({'routers': s.DATABASE_ROUTERS, 'replicas': {a: [d['HOST'], d['PORT'], d['NAME'],"
        " d['USER'], d['OPTIONS']['connect_timeout'], d['TEST']['MIRROR']]"
        " for a, d in s.DATABASES.items() if a != 'default'}}))"
    )
    env = os.environ | {"DJANGO_SETTINGS_MODULE": "portal.settings", "DATABASE_REPLICA_URLS": replica_urls}
    env.pop("DATABASE_NAME", None)
    return subprocess.run(
        [sys.executable, "-c", probe], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )


class ReplicaSettingsTests(SimpleTestCase):
    def test_each_url_becomes_a_replica_alias_that_the_test_run_mirrors(self):
        result = settings_in_a_process(
            "postgresql://reader@db-r1.internal:5433/portal, postgresql://reader@db-r2/portal"
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        answer = json.loads(result.stdout.strip().splitlines()[-1])
        self.assertEqual(answer["routers"], ["portal.db_routing.ReplicaRouter"])
        self.assertEqual(
            answer["replicas"],
            {
                "replica_1": ["db-r1.internal", "5433", "portal", "reader", 2, "default"],
                "replica_2": ["db-r2", "", "portal", "reader", 2, "default"],
            },
        )

    def test_a_url_that_is_not_postgresql_is_refused_naming_the_setting(self):
        result = settings_in_a_process("mysql://reader@db-r1/portal")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("DATABASE_REPLICA_URLS must be a postgresql:// URL", result.stderr)
