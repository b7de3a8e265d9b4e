"""The search job's state machine: every change of a job's status happens here.

    queued ──claim──▶ running ──done──▶ done
       ▲                 │  └──fail──▶ failed
       └──── requeue ────┘

Each transition sets the status and its stage together: the database refuses a row where they disagree
(search_job_stage_matches_status). Publishing (enqueue, sweep) records when a queued job's message
reached the broker; it never changes the status.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnreachable

from portal.audit import audit_record
from portal.models import AuditEntry
from search import publish
from search.models import SearchJob

logger = logging.getLogger(__name__)

SEARCH_LOWEST_PRIORITY = 9  # the broker keeps priorities 0 (taken first) to 9
UNFINISHED = [SearchJob.Status.QUEUED, SearchJob.Status.RUNNING]


# --- Claim, progress, and the end of a run ----------------------------------------------------


def search_job_claim(*, job_id: int, now: datetime | None = None) -> int | None:
    """Take a job for this worker; the attempt number, or None if it is done or taken."""
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.SEARCH_STALE_SECONDS)
    claimable = Q(status=SearchJob.Status.QUEUED) | Q(status=SearchJob.Status.RUNNING, heartbeat_at__lt=stale_before)
    with transaction.atomic():
        job = SearchJob.objects.select_for_update().filter(claimable, pk=job_id).first()
        if job is None:
            return None  # deleted, finished, or running on another worker
        if job.attempts >= settings.SEARCH_MAX_ATTEMPTS:
            search_job_fail(
                job_id=job_id, now=now, reason=f"The search was interrupted {job.attempts} times; it was given up."
            )
            return None
        SearchJob.objects.filter(pk=job_id).update(
            status=SearchJob.Status.RUNNING,
            stage=SearchJob.Stage.DETECTING,
            attempts=F("attempts") + 1,
            heartbeat_at=now,
            started_at=job.started_at or now,
            error="",
        )
        return job.attempts + 1


class Heartbeat:
    """Beats every few seconds from its own thread and connection while a job runs."""

    def __init__(self, job_id: int, attempt: int):
        self.job_id, self.attempt = job_id, attempt
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.wait(settings.SEARCH_HEARTBEAT_SECONDS):
                SearchJob.objects.filter(pk=self.job_id, status=SearchJob.Status.RUNNING, attempts=self.attempt).update(
                    heartbeat_at=timezone.now()
                )
        finally:
            connection.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def search_job_stage_set(*, job_id: int, attempt: int, stage: str) -> None:
    """Move a running job on to a later stage (searching, rendering), if this attempt still runs it."""
    # Only while running: a job the sweeper handed back is queued, and keeps the stage queued.
    SearchJob.objects.filter(pk=job_id, attempts=attempt, status=SearchJob.Status.RUNNING).update(
        stage=stage, heartbeat_at=timezone.now()
    )


def search_job_lock_owned(*, job_id: int, attempt: int) -> SearchJob | None:
    """Lock the job's row in the caller's transaction if this attempt still runs it; None if another took over."""
    # The job row only: an upload by the same officer holds the audit lock and needs a key-share
    # lock on the officer's row at commit; locking that row here as well would deadlock with it.
    job = SearchJob.objects.select_for_update(of=("self",)).select_related("started_by").get(pk=job_id)
    if job.status != SearchJob.Status.RUNNING or job.attempts != attempt:
        return None
    return job


def search_job_mark_done(*, job_id: int, timings: dict) -> None:
    """Running → done, with the stage timings (in the transaction that wrote the results)."""
    SearchJob.objects.filter(pk=job_id).update(
        status=SearchJob.Status.DONE, stage=SearchJob.Stage.DONE, finished_at=timezone.now(), stage_ms=timings, error=""
    )


def search_job_fail(
    *, job_id: int, reason: str, attempt: int | None = None, timings: dict | None = None, now: datetime | None = None
) -> bool:
    """Fail an unfinished job with the reason and its `search_failed` audit entry, in one transaction.

    With an attempt, only if that attempt is still the job's. False when nothing was failed.
    """
    changes = {
        "status": SearchJob.Status.FAILED,
        "stage": SearchJob.Stage.FAILED,
        "finished_at": now or timezone.now(),
        "error": reason,
    }
    if timings is not None:
        changes["stage_ms"] = timings
    jobs = SearchJob.objects.filter(pk=job_id, status__in=UNFINISHED)
    if attempt is not None:
        jobs = jobs.filter(attempts=attempt)
    with transaction.atomic():
        if not jobs.update(**changes):
            return False
        job = SearchJob.objects.select_related("started_by", "probe__case").get(pk=job_id)
        audit_record(
            action=AuditEntry.Action.SEARCH_FAILED, actor=job.started_by, case=job.probe.case, target=job, detail=reason
        )
    return True


def search_job_requeue(
    *, job_id: int, attempt: int | None = None, error: str | None = None, published_at: datetime | None = None
) -> bool:
    """Running → queued, to be claimed again (the attempt count bounds the retries). False if not running.

    published_at: the caller's claim on publishing it (the sweeper's), or None: not published yet.
    """
    changes = {
        "status": SearchJob.Status.QUEUED,
        "stage": SearchJob.Stage.QUEUED,
        "heartbeat_at": None,
        "published_at": published_at,
    }
    if error is not None:
        changes["error"] = error[:500]
    jobs = SearchJob.objects.filter(pk=job_id, status=SearchJob.Status.RUNNING)
    if attempt is not None:
        jobs = jobs.filter(attempts=attempt)
    return bool(jobs.update(**changes))


# --- Publishing --------------------------------------------------------------------------------


def search_job_priority(job_id: int) -> int:
    """The job's broker priority: how many other searches of its agency are queued or running, up to 9."""
    return (
        SearchJob.objects.filter(
            status__in=UNFINISHED, agency_id=SearchJob.objects.filter(pk=job_id).values("agency_id")[:1]
        )
        .exclude(pk=job_id)[:SEARCH_LOWEST_PRIORITY]
        .count()
    )


def search_job_enqueue(job_id: int, *, countdown: float | None = None) -> bool:
    """Put a queued job's message on the broker and record when; False when the broker is unreachable
    (the sweeper retries)."""
    try:
        # One queue for every agency, taken in priority order: an agency with nothing waiting goes ahead
        # of another's burst instead of behind it (workers take the lowest number first, FIFO within one).
        publish.search_job_run.apply_async((job_id,), priority=search_job_priority(job_id), countdown=countdown)
    except BrokerUnreachable as exc:
        # The job is committed: raising here would lose it (and the upload would delete its photo).
        logger.warning(
            "Search job %s waits for the broker, which cannot be reached: %s", job_id, exc, extra={"job_id": job_id}
        )
        # No publication on record (also when a sweep had claimed one): the next sweep publishes it.
        SearchJob.objects.filter(pk=job_id, status=SearchJob.Status.QUEUED).update(published_at=None)
        return False
    # The broker has it, and may still lose it if killed outright: the sweeper publishes a queued job again
    # once this is SEARCH_REPUBLISH_SECONDS old.
    SearchJob.objects.filter(pk=job_id, status=SearchJob.Status.QUEUED).update(published_at=timezone.now())
    return True


def _search_jobs_publish(job_ids: list[int]) -> None:
    for position, job_id in enumerate(job_ids):
        if not search_job_enqueue(job_id):
            # The broker is down: the rest give up the publication this sweep claimed, so the next one
            # tries them instead of waiting a whole republish period.
            SearchJob.objects.filter(pk__in=job_ids[position + 1 :], status=SearchJob.Status.QUEUED).update(
                published_at=None
            )
            return


def search_jobs_sweep(*, now: datetime | None = None) -> list[int]:
    """Re-queue running jobs whose worker stopped beating (fail those out of attempts), publish queued jobs
    whose message never reached the broker, and again those published SEARCH_REPUBLISH_SECONDS ago; the ids
    put on the broker."""
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.SEARCH_STALE_SECONDS)
    republish_before = now - timedelta(seconds=settings.SEARCH_REPUBLISH_SECONDS)
    requeued = []
    with transaction.atomic():
        # Never published: once older than the staleness bound, so that the publish right after a job's
        # commit is not doubled. Published long ago: a broker killed outright may have lost the message; if
        # it did not, the second copy is harmless (the claim lets one run). Each row is claimed — locked,
        # skipping rows another sweeper holds, and stamped now — so that sweepers on several hosts publish
        # a job once per period between them.
        due = dict(
            SearchJob.objects.select_for_update(skip_locked=True)
            .filter(
                Q(published_at__isnull=True, created_at__lt=stale_before) | Q(published_at__lt=republish_before),
                status=SearchJob.Status.QUEUED,
            )
            .order_by("created_at")
            .values_list("pk", "published_at")
        )
        if due:
            SearchJob.objects.filter(pk__in=list(due)).update(published_at=now)
        unpublished = [pk for pk, published_at in due.items() if published_at is None]
        republished = [pk for pk, published_at in due.items() if published_at is not None]
        stale = (
            SearchJob.objects.select_for_update(skip_locked=True)
            .filter(status=SearchJob.Status.RUNNING, heartbeat_at__lt=stale_before)
            .values_list("pk", "attempts")
        )
        for job_id, attempts in stale:
            if attempts >= settings.SEARCH_MAX_ATTEMPTS:
                search_job_fail(
                    job_id=job_id,
                    now=now,
                    reason=f"The search was interrupted {attempts} times (its worker stopped); it was given up.",
                )
            # Claimed for this sweep's publish, as the queued jobs above.
            elif search_job_requeue(job_id=job_id, published_at=now):
                requeued.append(job_id)
        published = requeued + unpublished + republished
        if published:
            transaction.on_commit(lambda: _search_jobs_publish(published))
    if requeued:
        logger.warning("Re-queued search jobs whose worker was lost: %s", requeued, extra={"job_ids": requeued})
    if unpublished:
        logger.warning(
            "Publishing search jobs that never reached the broker: %s", unpublished, extra={"job_ids": unpublished}
        )
    if republished:
        logger.warning(
            "Publishing again search jobs still queued %s s after their message reached the broker "
            "(it may have been lost): %s",
            settings.SEARCH_REPUBLISH_SECONDS,
            republished,
            extra={"job_ids": republished},
        )
    return published
