"""The audit log is append-only and tamper-evident: verify_audit catches edited, deleted and reordered rows."""

import io

from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.test import TestCase

from portal.audit import audit_record, audit_verify
from portal.models import AuditEntry
from tests.base import AgencyFixtureMixin


def run_verify() -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_audit", stdout=out, stderr=err)
    except SystemExit as exit_info:
        return exit_info.code, out.getvalue() + err.getvalue()
    return 0, out.getvalue() + err.getvalue()


def behind_the_applications_back(sql: str, params=()) -> None:
    """Raw SQL with the append-only trigger switched off, as someone with database access could."""
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        try:
            cursor.execute(sql, params)
        finally:
            cursor.execute("SET session_replication_role = DEFAULT")


class AuditChainTests(AgencyFixtureMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.create_agencies()
        for number in range(5):
            audit_record(
                action=AuditEntry.Action.SEARCH_STARTED,
                actor=cls.alice,
                case=cls.case,
                detail=f"search {number}",
                data={"probe_hash": f"{number:064x}"},
            )
        cls.ids = list(AuditEntry.objects.order_by("id").values_list("id", flat=True))

    def test_an_untouched_log_is_whole_and_prints_its_head(self):
        code, output = run_verify()
        self.assertEqual(code, 0, output)
        head = AuditEntry.objects.order_by("-id").first().entry_hash
        self.assertIn(f"Head hash: {head}", output)
        self.assertTrue(audit_verify().whole)

    def test_each_entry_links_to_the_one_before(self):
        entries = list(AuditEntry.objects.order_by("id"))
        for previous, entry in zip(entries, entries[1:], strict=False):
            self.assertEqual(entry.prev_hash, previous.entry_hash)

    def test_an_edited_row_is_detected(self):
        target = self.ids[2]
        behind_the_applications_back("UPDATE portal_auditentry SET detail = 'nothing to see' WHERE id = %s", [target])
        code, output = run_verify()
        self.assertEqual(code, 1)
        self.assertIn(f"BROKEN at entry {target}", output)
        self.assertIn("content does not match", output)

    def test_a_deleted_row_is_detected(self):
        behind_the_applications_back("DELETE FROM portal_auditentry WHERE id = %s", [self.ids[1]])
        code, output = run_verify()
        self.assertEqual(code, 1)
        self.assertIn(f"BROKEN at entry {self.ids[2]}", output)

    def test_reordered_rows_are_detected(self):
        first, second = self.ids[1], self.ids[3]
        behind_the_applications_back(
            "UPDATE portal_auditentry SET id = -1 WHERE id = %s;"
            "UPDATE portal_auditentry SET id = %s WHERE id = %s;"
            "UPDATE portal_auditentry SET id = %s WHERE id = -1;",
            [first, first, second, second],
        )
        code, output = run_verify()
        self.assertEqual(code, 1)
        self.assertIn(f"BROKEN at entry {first}", output)

    def test_the_database_refuses_updates_and_deletes(self):
        for sql in (
            "UPDATE portal_auditentry SET detail = 'x' WHERE id = %s",
            "DELETE FROM portal_auditentry WHERE id = %s",
        ):
            with self.assertRaisesMessage(DatabaseError, "append-only"), transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(sql, [self.ids[0]])

    def test_the_model_refuses_updates_and_deletes(self):
        entry = AuditEntry.objects.first()
        entry.detail = "changed"
        with self.assertRaises(PermissionError):
            entry.save()
        with self.assertRaises(PermissionError):
            entry.delete()

    def test_an_entry_is_written_in_the_transaction_of_its_action(self):
        before = AuditEntry.objects.count()
        try:
            with transaction.atomic():
                audit_record(action=AuditEntry.Action.CASE_OPENED, actor=self.alice)
                raise RuntimeError("the action failed")
        except RuntimeError:
            pass
        self.assertEqual(AuditEntry.objects.count(), before)
        self.assertTrue(audit_verify().whole)
