"""Celery tasks: thin, idempotent, taking ids only (never image bytes or descriptors)."""

from celery import shared_task

from search import calibration, jobs, pipeline, retention


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
