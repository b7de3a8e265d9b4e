"""Celery tasks: thin, idempotent, taking ids only (never image bytes or descriptors)."""

from celery import shared_task
from django.conf import settings

from search import calibration, jobs, pipeline, preparation, retention, video, watchlist


@shared_task(name="search.tasks.search_job_run", acks_late=True, reject_on_worker_lost=True)
def search_job_run_task(job_id: int) -> None:
    pipeline.search_job_run(job_id=job_id)


@shared_task(name="search.tasks.search_jobs_sweep", ignore_result=True)
def search_jobs_sweep_task() -> None:
    jobs.search_jobs_sweep()


@shared_task(name="search.tasks.purge_expired", ignore_result=True)
def purge_expired_task() -> None:
    retention.purge_expired()


@shared_task(name="search.tasks.calibrations_refresh", ignore_result=True)
def calibrations_refresh_task() -> None:
    calibration.calibrations_refresh()


@shared_task(name="search.tasks.probe_preview", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def probe_preview_task(probe_id: int) -> None:
    preparation.probe_preview_run(probe_id=probe_id)


@shared_task(
    name="search.tasks.video_stills_find",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    soft_time_limit=max(settings.VIDEO_TIME_LIMIT_SECONDS - 30, 1),
    time_limit=settings.VIDEO_TIME_LIMIT_SECONDS,
)
def video_stills_find_task(video_id: int) -> None:
    video.video_stills_find(video_id=video_id)


@shared_task(name="search.tasks.watchlist_describe", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def watchlist_describe_task(entry_id: int) -> None:
    watchlist.watchlist_descriptors_fill(entry_id=entry_id)


@shared_task(name="search.tasks.watchlist_expire", ignore_result=True)
def watchlist_expire_task() -> None:
    watchlist.watchlist_expire()
