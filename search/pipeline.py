"""Running one search job: decode → detect → embed → search → render → store, with a heartbeat."""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.utils import timezone

from portal.audit import audit_record
from portal.models import AuditEntry
from search import index, selectors
from search.faces import engine_threshold, get_engine
from search.facework import PhotoFaces, box_overlap, timed
from search.imaging import PhotoRejected, decode_photo
from search.models import Candidate, FaceImage, ProbeFace, SearchJob
from search.services import media_store, search_job_claim, search_job_enqueue

logger = logging.getLogger(__name__)


class NoFaceFound(Exception):
    pass


class Heartbeat:
    """Beats every few seconds from its own thread and connection while a job runs."""

    def __init__(self, job_id: int, attempt: int):
        self.job_id, self.attempt = job_id, attempt
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.wait(settings.SEARCH_HEARTBEAT_SECONDS):
                SearchJob.objects.filter(pk=self.job_id, status=SearchJob.Status.RUNNING,
                                         attempts=self.attempt).update(heartbeat_at=timezone.now())
        finally:
            connection.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _set_stage(job_id: int, attempt: int, stage: str) -> None:
    SearchJob.objects.filter(pk=job_id, attempts=attempt).update(stage=stage, heartbeat_at=timezone.now())


def search_job_run(*, job_id: int) -> None:
    """Run a job to done or failed. Safe to call twice: a finished or taken job is left alone."""
    attempt = search_job_claim(job_id=job_id)
    if attempt is None:
        return
    job = SearchJob.objects.select_related("probe", "offense_category").get(pk=job_id)
    context = {"job_id": job_id, "agency_id": job.agency_id, "attempt": attempt}
    logger.info("Search job %s started, attempt %s", job_id, attempt, extra=context)
    timings: dict[str, float] = {}
    try:
        with Heartbeat(job_id, attempt):
            results = _analyse_and_search(job, attempt, timings)
    except (PhotoRejected, NoFaceFound) as exc:
        _finish_failed(job_id, attempt, str(exc), timings)
        logger.info("Search job %s failed: %s", job_id, exc, extra=context)
        return
    except Exception as exc:
        logger.exception("Search job %s failed on attempt %s", job_id, attempt, extra=context)
        if attempt >= settings.SEARCH_MAX_ATTEMPTS:
            _finish_failed(job_id, attempt, f"The search could not be completed: {type(exc).__name__}: {exc}",
                           timings)
            return
        # Hand it back and try again shortly; the attempt count bounds the retries. Not published until
        # the broker has the message: should it be unreachable now, the sweeper publishes the job later.
        SearchJob.objects.filter(pk=job_id, attempts=attempt).update(
            status=SearchJob.Status.QUEUED, stage=SearchJob.Stage.QUEUED, error=str(exc)[:500], heartbeat_at=None,
            published_at=None)
        search_job_enqueue(job_id, countdown=5)
        return
    _finish_done(job, attempt, results, timings)
    logger.info("Search job %s ran to its end: %s faces, stages %s ms", job_id, len(results), timings, extra=context)


def _analyse_and_search(job: SearchJob, attempt: int, timings: dict) -> list:
    with timed(timings, "decode"):
        with default_storage.open(job.probe.image.name, "rb") as stored:
            photo = decode_photo(stored.read())
    engine = get_engine(job.engine)
    photo_faces = PhotoFaces(photo.image, engine, timings)
    faces = photo_faces.find(sensitive=job.sensitive)
    if settings.SEARCH_DRILL_PAUSE_SECONDS:
        time.sleep(settings.SEARCH_DRILL_PAUSE_SECONDS)
    if not faces:
        raise NoFaceFound("No face found in the photo.")

    _set_stage(job.id, attempt, SearchJob.Stage.SEARCHING)
    include_minors = bool(job.offense_category and job.offense_category.is_missing_person)
    found: list[list[tuple]] = [[] for _ in faces]
    # Each gallery is searched with its own engine (a gallery being re-embedded keeps its old one until
    # the new descriptors are complete), so the probe is described once per engine in use.
    for engine_name, gallery_ids in selectors.gallery_ids_by_engine(agency_id=job.agency_id).items():
        embeddings = ([face.embedding for face in faces] if engine_name == job.engine
                      else _describe_with(engine_name, photo.image, faces, timings, job.sensitive))
        with timed(timings, "search"):
            for number, embedding in enumerate(embeddings):
                if embedding is None:
                    continue
                found[number] += [(hit, engine_name) for hit in index.nearest_profiles(
                    embedding, engine=engine_name, gallery_ids=gallery_ids, limit=job.top_k,
                    include_minors=include_minors)]
    timings.setdefault("search", 0.0)
    hits_per_face = [_best_per_profile(hits, job.top_k) for hits in found]

    _set_stage(job.id, attempt, SearchJob.Stage.RENDERING)
    results = []
    for number, (face, hits) in enumerate(zip(faces, hits_per_face), start=1):
        # Deterministic names: a re-run overwrites its own crops instead of leaving orphans.
        crop_name = media_store(f"crops/probes/{job.code}/face-{number}.jpg", photo_faces.crop_jpeg(face))
        results.append((number, face, crop_name, hits))
    return results


def _best_per_profile(hits: list[tuple], limit: int) -> list[tuple]:
    """Distances of two engines compare through their thresholds; one entry per profile, closest first."""
    ranked = sorted(hits, key=lambda pair: pair[0].distance / engine_threshold(pair[1]))
    seen, best = set(), []
    for hit, engine_name in ranked:
        if hit.profile_id not in seen:
            seen.add(hit.profile_id)
            best.append((hit, engine_name))
    return best[:limit]


def _describe_with(engine_name: str, image, faces: list, timings: dict, sensitive: bool) -> list:
    """Descriptors of another engine for the same faces, matched by box overlap (None where unmatched)."""
    other = PhotoFaces(image, get_engine(engine_name), timings).find(sensitive=sensitive)
    matched = []
    for face in faces:
        overlaps = [(box_overlap(face.box, candidate.box), candidate) for candidate in other]
        overlap, best = max(overlaps, key=lambda pair: pair[0], default=(0.0, None))
        matched.append(best.embedding if best is not None and overlap >= 0.3 else None)
    return matched


def _finish_done(job: SearchJob, attempt: int, results: list, timings: dict) -> None:
    with transaction.atomic():
        # The job row only: an upload by the same officer holds the audit lock and needs a key-share
        # lock on the officer's row at commit; locking that row here as well would deadlock with it.
        current = SearchJob.objects.select_for_update(of=("self",)).select_related("started_by").get(pk=job.id)
        if current.status != SearchJob.Status.RUNNING or current.attempts != attempt:
            return  # another worker took the job over; its results stand
        # One candidate set per job: a re-run replaces what an interrupted run wrote.
        ProbeFace.objects.filter(probe_id=job.probe_id).delete()
        # A face purged or erased while this search ran is not returned.
        still_held = set(FaceImage.objects.filter(
            id__in=[hit.face_image_id for _, _, _, hits in results for hit, _ in hits]).values_list("id", flat=True))
        candidates = []
        for number, face, crop_name, hits in results:
            probe_face = ProbeFace.objects.create(
                probe_id=job.probe_id, index=number, box=face.box, landmarks=face.landmarks,
                embedding=face.embedding, engine=job.engine, quality=face.quality, crop=crop_name)
            candidates += [
                Candidate(job_id=job.id, probe_face=probe_face, profile_id=hit.profile_id, engine=engine_name,
                          face_image_id=hit.face_image_id, distance=hit.distance, rank=rank)
                for rank, (hit, engine_name) in enumerate(
                    [(h, e) for h, e in hits if h.face_image_id in still_held], start=1)
            ]
        Candidate.objects.bulk_create(candidates)
        SearchJob.objects.filter(pk=job.id).update(
            status=SearchJob.Status.DONE, stage=SearchJob.Stage.DONE, finished_at=timezone.now(),
            stage_ms=timings, error="")
        # Recorded also when nothing was found: searches that found no one are audited too.
        audit_record(action=AuditEntry.Action.SEARCH_RESULTS, actor=current.started_by, case=job.probe.case,
                     target=current, detail=f"{len(candidates)} candidates for {len(results)} faces",
                     data={"candidate_ids": [c.id for c in candidates],
                           "profile_ids": [c.profile_id for c in candidates],
                           "likely": sum(c.is_match() for c in candidates),
                           "faces": len(results)})


def _finish_failed(job_id: int, attempt: int, reason: str, timings: dict) -> None:
    with transaction.atomic():
        updated = SearchJob.objects.filter(pk=job_id, attempts=attempt).update(
            status=SearchJob.Status.FAILED, stage=SearchJob.Stage.FAILED, finished_at=timezone.now(),
            error=reason, stage_ms=timings)
        if updated:
            job = SearchJob.objects.select_related("started_by", "probe__case").get(pk=job_id)
            audit_record(action=AuditEntry.Action.SEARCH_FAILED, actor=job.started_by, case=job.probe.case,
                         target=job, detail=reason)
