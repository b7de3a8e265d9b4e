"""Celery tasks of the portal app: thin, idempotent, taking ids only."""

from celery import shared_task

from portal import reports


@shared_task(name="portal.tasks.case_report_render", acks_late=True, reject_on_worker_lost=True)
def case_report_render_task(report_id: int) -> None:
    reports.case_report_render(report_id=report_id)
