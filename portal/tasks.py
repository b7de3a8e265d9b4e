"""Celery tasks of the portal app: thin, idempotent, taking ids only. Services send them by name
(portal/publish.py); nothing imports this module but the worker's task discovery."""

from celery import shared_task

from portal.publish import CASE_REPORT_RENDER
from portal.reports.render import case_report_render


@shared_task(name=CASE_REPORT_RENDER, acks_late=True, reject_on_worker_lost=True)
def case_report_render_task(report_id: int) -> None:
    case_report_render(report_id=report_id)
