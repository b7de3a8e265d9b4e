"""Publishing tasks by name (Celery's send_task), so that nothing imports search/tasks.py.

A task sent by name is routed as `apply_async` on the task routed it: no route names it, so it goes to
CELERY_TASK_DEFAULT_QUEUE, at the priority given (the broker's priority lists, 0 taken first).
"""

from __future__ import annotations

from portal.celery import app


class TaskByName:
    """A task known only by its name, published with the arguments `apply_async` takes."""

    def __init__(self, name: str):
        self.name = name

    def apply_async(self, args: tuple, *, priority: int | None = None, countdown: float | None = None) -> None:
        """Send the message (ids only); kombu's OperationalError when the broker cannot be reached."""
        app.send_task(self.name, args=list(args), priority=priority, countdown=countdown)


search_job_run = TaskByName("search.tasks.search_job_run")
probe_preview = TaskByName("search.tasks.probe_preview")
video_stills_find = TaskByName("search.tasks.video_stills_find")
watchlist_describe = TaskByName("search.tasks.watchlist_describe")
