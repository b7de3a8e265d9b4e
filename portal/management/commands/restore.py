import json
import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from portal.backups import BackupError, restore_from


class Command(BaseCommand):
    help = (
        "Restore a backup into an empty, migrated deployment: the manifest is checked first, then the data and "
        "the media are loaded and checked, then the erasures of the erasure register are applied again."
    )

    def add_arguments(self, parser):
        parser.add_argument("directory", help="A folder written by manage.py backup")
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON")

    def handle(self, *args, directory, **options):
        try:
            summary = restore_from(
                directory=directory,
                progress=lambda total, description: tqdm(total=total, desc=description, unit="file", file=sys.stderr),
            )
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        if options["json"]:
            self.stdout.write(json.dumps(summary.as_dict()))
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
