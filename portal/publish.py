"""The portal's tasks, sent to the broker by name: services queue work without importing portal/tasks.py."""

from portal.celery import app

CASE_REPORT_RENDER = "portal.tasks.case_report_render"


def case_report_render(report_id: int) -> None:
    """Queue the rendering of a case report (the id only)."""
    app.send_task(CASE_REPORT_RENDER, args=(report_id,))
