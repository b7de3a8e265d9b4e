"""The worker's body for a case report: read its contents, lay them out, store the PDF, mark it done or failed."""

from __future__ import annotations

import io
import logging

from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from portal.audit import audit_record
from portal.models import AuditEntry, CaseReport
from portal.reports import contents, layout

logger = logging.getLogger(__name__)

FAILED_MESSAGE = (
    "The report could not be made. Prepare it again; if it fails again, tell the platform team the report's reference."
)


def case_report_render(*, report_id: int) -> None:
    """Render and store the PDF; a finished report is left alone (a redelivered task does nothing)."""
    report = CaseReport.objects.select_related("case", "case__agency", "requested_by").filter(pk=report_id).first()
    if report is None or report.status != CaseReport.Status.QUEUED:
        return
    try:
        pdf = layout.case_report_pdf(contents.case_report_contents(report=report))
    except Exception:  # noqa: BLE001 - the trace goes to the log, the person who asked gets a clean message
        logger.exception(
            "Case report %s failed", report_id, extra={"report_id": report_id, "agency_id": report.case.agency_id}
        )
        CaseReport.objects.filter(pk=report_id).update(
            status=CaseReport.Status.FAILED, error=FAILED_MESSAGE, finished_at=timezone.now()
        )
        return
    name = f"reports/{report.case.code}/{report.code}.pdf"
    if default_storage.exists(name):
        default_storage.delete(name)
    name = default_storage.save(name, io.BytesIO(pdf))
    with transaction.atomic():
        CaseReport.objects.filter(pk=report_id).update(
            status=CaseReport.Status.DONE, file=name, finished_at=timezone.now()
        )
        audit_record(
            action=AuditEntry.Action.REPORT_GENERATED,
            actor=report.requested_by,
            case=report.case,
            target=report,
            detail=f"{len(pdf)} bytes",
        )
