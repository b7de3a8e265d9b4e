from django.core.management.base import BaseCommand

from portal.backups import backup_create
from portal.management.commands._backup_run import run_backup_operation


class Command(BaseCommand):
    help = (
        "Back the deployment up: a database dump, every media file and a manifest (SHA-256 and size of every "
        "file, migrations, row counts, audit head hash). Refused when the audit log does not hold."
    )

    def add_arguments(self, parser):
        parser.add_argument("directory", nargs="?", help="A new or empty folder (default: a dated one in BACKUP_DIR)")
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON")

    def handle(self, *args, directory, **options):
        summary = run_backup_operation(self, backup_create, directory=directory, as_json=options["json"])
        if summary is None:
            return
        self.stdout.write(
            f"Backup written to {summary.directory} ({summary.created_at}): {summary.files} files, "
            f"{summary.bytes:,} bytes ({summary.media_files} media files and the database dump), "
            f"{len(summary.tables)} tables, {sum(summary.tables.values()):,} rows, "
            f"{summary.audit_entries} audit entries.\n"
            f"Audit head hash: {summary.audit_head_hash}\n"
            f"Manifest SHA-256: {summary.manifest_sha256} (keep it apart from the backup)"
        )
        for name in summary.media_vanished:
            self.stdout.write(f"  deleted while the backup ran, not in it: {name}")
