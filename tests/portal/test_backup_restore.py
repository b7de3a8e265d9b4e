"""Backup and restore drill: a deployment is backed up, a person is erased after the backup, everything is wiped
and restored. The restore must bring back every row and file with the same audit chain and search results, and
the person erased since must stay erased. Bad backups and occupied deployments are refused, changing nothing.

TransactionTestCase: pg_dump, pg_restore and psql are other processes and see committed data only."""

import hashlib
import importlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import TransactionTestCase, override_settings

from accounts.models import Agency, Role
from accounts.services import agency_create, user_create
from portal.audit import audit_verify
from portal.backups import MANIFEST_NAME, product_tables
from portal.models import AuditEntry
from portal.services import case_create
from search import pipeline
from search.enrolment import EnrolmentItem, gallery_enrol_batch, gallery_get_or_create
from search.models import FaceImage, OffenseCategory, Profile, SearchJob, Tombstone
from search.selectors import search_job_result
from search.services import probe_submit
from search.subject_requests import (
    ERASURE_REGISTER_NAME,
    erasure_register_read,
    subject_request_complete,
    subject_request_file,
    subject_request_search,
)
from tests.base import (
    GALLERY_PROVENANCE,
    PASSWORD,
    AgencyFixtureMixin,
    faces_dir,
    image_bytes,
    media_files,
    photo_bytes,
)

# Three people; P01's img5.jpg is the probe, P02 (the person who asks for erasure) files with img28.jpg.
GALLERY = {
    "P01": ["img1.jpg", "img2.jpg", "img4.jpg"],
    "P02": ["img26.jpg", "img27.jpg"],
    "P03": ["img47.jpg", "img48.jpg"],
}
PROBE_PHOTO, REQUEST_PHOTO = "img5.jpg", "img28.jpg"
DRILL_BOUND_SECONDS = 60


def run_json(*args) -> dict:
    out = io.StringIO()
    call_command(*args, "--json", stdout=out, stderr=io.StringIO())
    return json.loads(out.getvalue())


def table_counts() -> dict[str, int]:
    with connection.cursor() as cursor:
        counts = {}
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(table)}")
            counts[table] = cursor.fetchone()[0]
    return counts


def stored_hashes() -> dict[str, str]:
    hashes = {}
    for name in media_files():
        with default_storage.open(name, "rb") as stored:
            hashes[name] = hashlib.sha256(stored.read()).hexdigest()
    return hashes


def wipe_deployment() -> None:
    """Every product table emptied and every media file deleted: the deployment after a disaster, re-migrated."""
    with connection.cursor() as cursor:
        # The append-only trigger fires on UPDATE and DELETE of a row; TRUNCATE of the audit table passes it.
        cursor.execute(
            f"TRUNCATE {', '.join(connection.ops.quote_name(t) for t in sorted(product_tables()))} "
            "RESTART IDENTITY CASCADE"
        )
    for name in media_files():
        default_storage.delete(name)


class BackupFolderMixin:
    """A media folder and a backup folder (with the erasure register) of the test's own, and the offense
    categories a migration adds (a transactional test's flush removes them)."""

    def setUp(self):
        super().setUp()
        work = Path(tempfile.mkdtemp(prefix="portal-backup-test-"))
        self.addCleanup(shutil.rmtree, work, ignore_errors=True)
        self.backups = work / "backups"
        override = override_settings(MEDIA_ROOT=str(work / "media"), BACKUP_DIR=self.backups)
        override.enable()
        self.addCleanup(override.disable)
        migration = importlib.import_module("search.migrations.0004_offense_categories")
        for name in migration.CATEGORIES:
            OffenseCategory.objects.get_or_create(name=name, defaults={"is_missing_person": name == "Missing person"})
        # The broker is the outside world here: the search runs in this process.
        patcher = mock.patch("search.services.search_job_enqueue")
        patcher.start()
        self.addCleanup(patcher.stop)


class BackupRestoreDrillTests(BackupFolderMixin, AgencyFixtureMixin, TransactionTestCase):
    def setUp(self):
        super().setUp()
        self.create_agencies()
        self.privacy = user_create(username="priya", password=PASSWORD, role="privacy_officer")
        gallery, _ = gallery_get_or_create(
            owner=self.north, name="North bookings", legal_basis="Test act", **GALLERY_PROVENANCE
        )
        summary = gallery_enrol_batch(
            gallery=gallery,
            gallery_created=True,
            items=[
                EnrolmentItem(path=str(faces_dir() / name), display_name=person)
                for person, names in GALLERY.items()
                for name in names
            ],
        )
        assert summary.faces_enrolled == 7, summary.as_dict()

    def search(self) -> dict:
        job = probe_submit(case=self.case, uploaded_by=self.alice, data=photo_bytes(PROBE_PHOTO))
        pipeline.search_job_run(job_id=job.id)
        job.refresh_from_db()
        return search_job_result(job=job)

    def test_a_restore_brings_everything_back_and_keeps_a_later_erasure(self):
        # Filed and searched before the backup, erased after it.
        request = subject_request_file(kind="erasure", data=photo_bytes(REQUEST_PHOTO), contact="pat@example.org")
        matches = subject_request_search(request=request, user=self.privacy)
        self.assertEqual([m["profile"] for m in matches], ["P02"])
        before = self.search()
        self.assertEqual([c["profile"] for c in before["faces"][0]["candidates"]], ["P01", "P02", "P03"])
        erased_profile = Profile.objects.get(display_name="P02")
        erased_faces = list(FaceImage.objects.filter(profile=erased_profile).select_related("descriptor"))
        erased_files = {name for f in erased_faces for name in (f.image.name, f.crop.name) if name}
        hashes_at_backup = stored_hashes()
        self.assertIn(request.photo.name, hashes_at_backup)

        started = time.monotonic()
        backup_dir = self.backups / "drill"
        backup = run_json("backup", str(backup_dir))
        backed_up_at = time.monotonic()
        manifest = json.loads((backup_dir / MANIFEST_NAME).read_text())
        self.assertEqual(backup["directory"], str(backup_dir))
        self.assertEqual(backup["files"], len(hashes_at_backup) + 1)  # the media files and the dump
        self.assertEqual(backup["tables"], table_counts())
        self.assertEqual(backup["audit_head_hash"], audit_verify().head_hash)
        self.assertEqual(manifest["audit"]["head_hash"], backup["audit_head_hash"])
        self.assertEqual(
            {
                name.removeprefix("media/"): entry["sha256"]
                for name, entry in manifest["files"].items()
                if name.startswith("media/")
            },
            hashes_at_backup,
        )
        self.assertIn("search", manifest["migrations"])
        # The descriptors (a partitioned table: its rows in the leaves) are counted and carried with their faces.
        self.assertEqual(manifest["tables"]["search_facedescriptor"], manifest["tables"]["search_faceimage"])
        self.assertEqual(manifest["tables"]["search_faceimage"], 7)

        subject_request_complete(
            request=request,
            user=self.privacy,
            profile_ids=[erased_profile.id],
            identity_note="Passport seen at the front desk",
        )
        register = (self.backups / ERASURE_REGISTER_NAME).read_text().splitlines()
        self.assertEqual(len(register), 1)
        self.assertEqual(json.loads(register[0])["profiles"][0]["code"], str(erased_profile.code))

        wiped_at = time.monotonic()
        wipe_deployment()
        self.assertEqual(AuditEntry.objects.count(), 0)  # TRUNCATE is not stopped by the append-only trigger
        self.assertEqual(media_files(), [])
        restore_started = time.monotonic()
        restored = run_json("restore", str(backup_dir))
        restored_at = time.monotonic()

        # Every table as backed up, but for what the erasure since removed and recorded.
        expected = dict(manifest["tables"])
        expected["search_profile"] -= 1
        expected["search_faceimage"] -= len(erased_faces)
        expected["search_facedescriptor"] -= len(erased_faces)
        expected["search_tombstone"] += 2 * len(erased_faces)  # one per installed engine
        # The re-application: the searching agency told that a candidate of its search was erased, then the erasure.
        added = list(AuditEntry.objects.order_by("id"))[manifest["audit"]["entries"] :]
        self.assertEqual(
            [entry.action for entry in added],
            [AuditEntry.Action.CANDIDATE_ERASED] * (len(added) - 1) + [AuditEntry.Action.SUBJECT_ERASED],
        )
        self.assertGreaterEqual(len(added), 2)  # the erased person was a candidate of the stored search
        self.assertEqual(added[0].prev_hash, manifest["audit"]["head_hash"])
        expected["portal_auditentry"] += len(added)
        self.assertEqual(table_counts(), expected)
        self.assertEqual(restored["tables"], manifest["tables"])  # checked before the erasure was re-applied
        self.assertEqual(restored["audit_head_hash"], manifest["audit"]["head_hash"])
        # Every file as backed up, but the erased person's and the answered request's photo.
        self.assertEqual(
            stored_hashes(),
            {name: sha for name, sha in hashes_at_backup.items() if name not in erased_files | {request.photo.name}},
        )
        # The audit chain is whole and continues from the backup's head with the re-application.
        chain = audit_verify()
        self.assertTrue(chain.whole)
        self.assertEqual(chain.entries, manifest["audit"]["entries"] + len(added))
        self.assertEqual(added[-1].data["reference"], request.reference)
        self.assertEqual([e["reference"] for e in restored["erasures_reapplied"]], [request.reference])
        # The person erased after the backup stays erased: no profile, face, descriptor or file; tombstones.
        self.assertFalse(Profile.objects.filter(code=erased_profile.code).exists())
        self.assertFalse(FaceImage.objects.filter(content_hash__in=[f.content_hash for f in erased_faces]).exists())
        self.assertFalse(erased_files & set(media_files()))
        self.assertEqual(Tombstone.objects.count(), 2 * len(erased_faces))
        for face in erased_faces:
            self.assertTrue(Tombstone.objects.filter(engine=face.engine, embedding=face.descriptor.embedding).exists())
        request.refresh_from_db()
        self.assertEqual(
            (request.status, request.completed_by, request.identity_note, request.photo.name),
            ("completed", self.privacy, "Passport seen at the front desk", ""),
        )
        # The stored result keeps its candidates, the erased one as a marker; the same search finds the same
        # candidates but the erased person, at the same distances, under fresh ids.
        stored = search_job_result(job=SearchJob.objects.get(id=before["job"]))
        self.assertEqual([c["profile"] for c in stored["faces"][0]["candidates"]], ["P01", "(erased)", "P03"])
        again = self.search()
        self.assertGreater(again["job"], before["job"])
        self.assertEqual(
            again["faces"][0]["candidates"],
            [
                {**c, "rank": rank}
                for rank, c in enumerate(
                    (c for c in before["faces"][0]["candidates"] if c["profile"] != "P02"), start=1
                )
            ],
        )
        drill_seconds = (backed_up_at - started) + (restored_at - restore_started)
        sys.stderr.write(
            f"\n{len(manifest['tables'])} tables, {backup['files']} files: backup "
            f"{backed_up_at - started:.2f} s, wipe {restore_started - wiped_at:.2f} s, "
            f"restore {restored_at - restore_started:.2f} s\n"
        )
        self.assertLess(drill_seconds, DRILL_BOUND_SECONDS)


class RestoreRefusalTests(BackupFolderMixin, TransactionTestCase):
    def setUp(self):
        super().setUp()
        north = agency_create(slug="north", name="North Police", seats=5)
        self.alice = user_create(username="alice", password=PASSWORD, role=Role.OFFICER, agency=north)
        case_create(created_by=self.alice, number="N-001", title="Robbery at the station")
        default_storage.save("probes/one.png", ContentFile(image_bytes("PNG")))
        default_storage.save("crops/probes/two.jpg", ContentFile(image_bytes("JPEG")))
        self.backup_dir = self.backups / "refusals"
        run_json("backup", str(self.backup_dir))

    def assert_refused(self, *words) -> None:
        counts = table_counts()
        files = media_files()
        with self.assertRaises(CommandError) as refused:
            run_json("restore", str(self.backup_dir))
        for word in words:
            self.assertIn(word, str(refused.exception))
        self.assertEqual((table_counts(), media_files()), (counts, files), "a refused restore changed something")

    def test_an_altered_file_is_refused_naming_it_and_nothing_is_restored(self):
        wipe_deployment()
        altered = self.backup_dir / "media" / "probes" / "one.png"
        data = bytearray(altered.read_bytes())
        data[-1] ^= 0xFF  # same size, other content
        altered.write_bytes(bytes(data))
        self.assert_refused("media/probes/one.png", "altered", "nothing was restored")
        self.assertEqual(AuditEntry.objects.count(), 0)

    def test_the_command_exits_1_naming_the_altered_dump(self):
        wipe_deployment()
        (self.backup_dir / "database.dump").write_bytes(b"not a dump")
        environment = {
            **os.environ,
            "DATABASE_NAME": connection.settings_dict["NAME"],
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "BACKUP_DIR": str(self.backups),
        }
        result = subprocess.run(
            [sys.executable, "manage.py", "restore", str(self.backup_dir)],
            env=environment,
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertIn("database.dump: altered", result.stderr)
        self.assertEqual(table_counts()["accounts_agency"], 0)

    def test_a_missing_file_is_refused(self):
        wipe_deployment()
        (self.backup_dir / "media" / "crops" / "probes" / "two.jpg").unlink()
        self.assert_refused("media/crops/probes/two.jpg: missing")

    def test_an_extra_file_is_refused(self):
        wipe_deployment()
        (self.backup_dir / "media" / "probes" / "planted.jpg").write_bytes(image_bytes("JPEG"))
        self.assert_refused("media/probes/planted.jpg: not in the manifest")

    def test_a_missing_manifest_is_refused(self):
        wipe_deployment()
        (self.backup_dir / MANIFEST_NAME).unlink()
        self.assert_refused("manifest.json is missing")

    def test_a_backup_of_other_migrations_is_refused(self):
        wipe_deployment()
        manifest = json.loads((self.backup_dir / MANIFEST_NAME).read_text())
        manifest["migrations"]["search"].append("9999_from_the_future")
        (self.backup_dir / MANIFEST_NAME).write_text(json.dumps(manifest))
        self.assert_refused("migrations differ", "missing here: search.9999_from_the_future")

    def test_a_damaged_erasure_register_is_refused_naming_the_line(self):
        wipe_deployment()
        self.backups.joinpath(ERASURE_REGISTER_NAME).write_text('{"broken\n{"reference": "SR-1"}\n')
        self.assert_refused("erasure-register.jsonl, line 1", "nothing was restored")

    def test_a_deployment_that_holds_data_is_refused(self):
        self.assert_refused("already holds data", "accounts_agency (1)", "portal_case (1)")

    def test_a_storage_that_holds_files_is_refused(self):
        wipe_deployment()
        default_storage.save("probes/left-over.png", ContentFile(image_bytes("PNG")))
        self.assert_refused("media storage already holds 1 files")

    def test_a_backup_restores_into_an_empty_deployment_and_new_rows_get_fresh_ids(self):
        counts, hashes = table_counts(), stored_hashes()
        last_agency_id = Agency.objects.order_by("-id").values_list("id", flat=True).first()
        wipe_deployment()
        run_json("restore", str(self.backup_dir))
        self.assertEqual((table_counts(), stored_hashes()), (counts, hashes))
        self.assertTrue(audit_verify().whole)
        # The sequences continue after the restored rows.
        self.assertGreater(agency_create(slug="east", name="East Police", seats=1).id, last_agency_id)
        case = case_create(created_by=self.alice, number="N-002", title="After the restore")
        self.assertTrue(audit_verify().whole)
        self.assertEqual(AuditEntry.objects.order_by("-id").first().case, case)

    def test_a_broken_audit_chain_is_not_backed_up(self):
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = replica")
            try:
                cursor.execute(
                    "UPDATE portal_auditentry SET detail = 'nothing to see' "
                    "WHERE id = (SELECT min(id) FROM portal_auditentry)"
                )
            finally:
                cursor.execute("SET session_replication_role = DEFAULT")
        with self.assertRaisesMessage(CommandError, "The audit log is broken"):
            run_json("backup", str(self.backups / "second"))
        self.assertFalse((self.backups / "second").exists())
        self.assertFalse((self.backups / "second.partial").exists())


def test_a_torn_last_line_of_the_erasure_register_is_left_out(settings, tmp_path):
    # A crash while appending leaves a line without its newline; its erasure was never committed.
    settings.BACKUP_DIR = tmp_path
    whole = {"format": 1, "reference": "SR-2026-00000001", "erased_at": "2026-12-01T10:00:00+00:00", "profiles": []}
    (tmp_path / ERASURE_REGISTER_NAME).write_text(json.dumps(whole) + '\n{"format": 1, "reference": "SR-2')
    assert erasure_register_read() == [whole]
