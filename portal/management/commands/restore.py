from django.core.management.base import BaseCommand

from portal.backups import restore_from
from portal.management.commands._backup_run import run_backup_operation


class Command(BaseCommand):
    help = (
        "Restore a backup into an empty, migrated deployment: the manifest is checked first, then the data and "
        "the media are loaded and checked, then the erasures of the erasure register are applied again."
    )

    def add_arguments(self, parser):
        parser.add_argument("directory", help="A folder written by manage.py backup")
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON")

    def handle(self, *args, directory, **options):
        summary = run_backup_operation(self, restore_from, directory=directory, as_json=options["json"])
        if summary is None:
            return
        self.stdout.write(
            f"Restored {summary.directory} (backup of {summary.backup_created_at}): {summary.files} files, "
            f"{summary.bytes:,} bytes, {len(summary.tables)} tables with the backup's row counts; every file's "
            f"SHA-256 and the audit log's head hash agree.\nAudit head hash at the backup: {summary.audit_head_hash}"
        )
        for erasure in summary.erasures_reapplied:
            self.stdout.write(
                f"  erasure {erasure['reference']} ({erasure['erased_at']}) applied again: "
                f"{len(erasure['profile_ids'])} profiles, {erasure['files_removed']} files, "
                f"{erasure['tombstones_restored']} tombstones restored from the register"
            )
