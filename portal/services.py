"""Writes for cases and case reports."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from portal import publish
from portal.audit import audit_record
from portal.models import AuditEntry, Case, CaseReport
from search.watchlist import watchlist_entries_end_for_case


class CaseError(ValueError):
    """A case request that cannot be carried out, with the reason."""


def case_create(*, created_by: User, number: str, title: str) -> Case:
    if not created_by.agency_id:
        raise CaseError("Only agency users open cases.")
    number = number.strip()
    if not number:
        raise CaseError("A case needs a number.")
    try:
        with transaction.atomic():
            case = Case.objects.create(
                agency_id=created_by.agency_id, number=number, title=title.strip() or number, created_by=created_by
            )
            audit_record(
                action=AuditEntry.Action.CASE_OPENED, actor=created_by, case=case, target=case, detail=case.title
            )
            return case
    except IntegrityError:
        raise CaseError(f"Case {number} already exists in your agency.") from None


def case_get_or_create(*, user: User, number: str, title: str = "") -> Case:
    case = Case.objects.filter(agency_id=user.agency_id, number=number.strip()).first()
    return case or case_create(created_by=user, number=number, title=title)


@transaction.atomic
def case_close(*, case: Case, actor: User | None = None) -> Case:
    Case.objects.filter(pk=case.pk).update(status=Case.Status.CLOSED, closed_at=timezone.now())
    audit_record(action=AuditEntry.Action.CASE_CLOSED, actor=actor, agency=case.agency, case=case, target=case)
    # A closed case searches no more: its watch-list entries end with it.
    watchlist_entries_end_for_case(case, actor=actor)
    case.refresh_from_db()
    return case


@transaction.atomic
def case_reopen(*, case: Case, actor: User | None = None) -> Case:
    Case.objects.filter(pk=case.pk).update(status=Case.Status.OPEN, closed_at=None)
    audit_record(action=AuditEntry.Action.CASE_REOPENED, actor=actor, agency=case.agency, case=case, target=case)
    case.refresh_from_db()
    return case


@transaction.atomic
def case_report_request(*, case: Case, user: User, ip_address: str | None = None) -> CaseReport:
    """Ask for a case's PDF report; a worker renders it once this transaction is committed."""
    report = CaseReport.objects.create(case=case, requested_by=user)
    audit_record(action=AuditEntry.Action.REPORT_REQUESTED, actor=user, case=case, target=report, ip_address=ip_address)
    report_id = report.id
    # Queued only after commit, or the worker may look for a report it cannot see yet.
    transaction.on_commit(lambda: publish.case_report_render(report_id))
    return report
