from django.core.management.base import BaseCommand

from portal.audit import audit_verify


class Command(BaseCommand):
    help = (
        "Walk the audit log's hash chain. Exits 0 when it is whole, 1 naming the first broken entry. "
        "Prints the head hash: keep it elsewhere to detect a removal of the newest entries."
    )

    def handle(self, *args, **options):
        check = audit_verify()
        if check.whole:
            self.stdout.write(f"The audit log is whole: {check.entries} entries.\nHead hash: {check.head_hash}")
            return
        self.stderr.write(
            f"The audit log is BROKEN at entry {check.broken_at}: {check.problem}.\n"
            f"{check.entries} entries before it hold; last good hash: {check.head_hash}"
        )
        raise SystemExit(1)
