"""Writing and verifying the append-only, hash-chained audit log."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from portal.models import AuditEntry

GENESIS_HASH = "0" * 64
# One writer at a time extends the chain; the lock is held until the surrounding transaction ends, so
# an entry is committed together with the action it records, or not at all.
_CHAIN_LOCK_KEY = 7_312_004_118


def audit_record(
    *,
    action: str,
    actor=None,
    username: str = "",
    agency=None,
    ip_address: str | None = None,
    case=None,
    target=None,
    detail: str = "",
    data: dict | None = None,
) -> AuditEntry:
    """Append an entry, in the caller's transaction."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])
            cursor.execute("SELECT nextval(pg_get_serial_sequence('portal_auditentry', 'id'))")
            entry_id = cursor.fetchone()[0]
        previous = AuditEntry.objects.order_by("-id").values_list("entry_hash", flat=True).first()
        entry = AuditEntry(
            id=entry_id,
            at=timezone.now(),
            action=action,
            actor=actor,
            username=(username or (actor.username if actor else ""))[:150],
            agency=agency if agency is not None else getattr(actor, "agency", None),
            ip_address=ip_address,
            case=case,
            target_type=target._meta.label_lower if target is not None else "",
            target_id=str(target.pk) if target is not None else "",
            detail=detail[:300],
            data=data or {},
            prev_hash=previous or GENESIS_HASH,
        )
        entry.entry_hash = entry.compute_hash()
        entry.save(force_insert=True)
        return entry


# OWASP's rule for CSV injection: a cell a spreadsheet would read as a formula starts with one of these.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_HEADER = ["id", "at", "action", "user", "ip_address", "case", "target", "detail", "entry_hash"]


def csv_cell(value) -> str:
    """A cell that a spreadsheet shows as text: a leading formula character is escaped with a quote."""
    value = "" if value is None else str(value)
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def audit_csv_rows(entries):
    """The export's rows (header first), every cell neutralised: user names, case numbers and details are
    typed by people and must never run as a formula in the auditor's spreadsheet."""
    yield CSV_HEADER
    for entry in entries:
        yield [
            csv_cell(value)
            for value in (
                entry.id,
                entry.at.isoformat(),
                entry.action,
                entry.username,
                entry.ip_address or "",
                entry.case.number if entry.case else "",
                f"{entry.target_type}:{entry.target_id}".strip(":"),
                entry.detail,
                entry.entry_hash,
            )
        ]


@dataclass
class ChainCheck:
    entries: int
    head_hash: str
    broken_at: int | None = None
    problem: str = ""

    @property
    def whole(self) -> bool:
        return self.broken_at is None


def audit_verify(*, batch_size: int = 5000) -> ChainCheck:
    """Walk the chain in id order; report the first entry whose content or link does not hold."""
    previous_hash = GENESIS_HASH
    count = 0
    last_id = 0
    while True:
        batch = list(AuditEntry.objects.filter(id__gt=last_id).order_by("id")[:batch_size])
        if not batch:
            return ChainCheck(entries=count, head_hash=previous_hash)
        for entry in batch:
            if entry.prev_hash != previous_hash:
                return ChainCheck(
                    count,
                    previous_hash,
                    entry.id,
                    "its link to the previous entry is broken (an entry before it was deleted, changed or moved)",
                )
            if entry.compute_hash() != entry.entry_hash:
                return ChainCheck(count, previous_hash, entry.id, "its content does not match its hash (changed)")
            previous_hash = entry.entry_hash
            count += 1
            last_id = entry.id
