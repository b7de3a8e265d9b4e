"""Running one search job: decode → detect → embed → search → render → store; its states are search/jobs.py's."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction

from portal import db_routing
from portal.audit import audit_record
from portal.models import AuditEntry
from search import calibration, index, jobs, lawful_use
from search.faces import get_engine, quality_usable
from search.gallery_scope import gallery_ids_by_engine
from search.imaging import PhotoRejected, decode_photo
from search.models import NO_FACE_FOUND, Candidate, FaceImage, ProbeFace, SearchJob
from search.open_set import face_decision
from search.photo_faces import PhotoFaces, same_face, timed
from search.storage import media_store

logger = logging.getLogger(__name__)


class NoFaceFound(Exception):
    pass


def search_job_run(*, job_id: int) -> None:
    """Run a job to done or failed. Safe to call twice: a finished or taken job is left alone."""
    attempt = jobs.search_job_claim(job_id=job_id)
    if attempt is None:
        return
    # The job's own rows (and its authorisation) are read here, from the primary, never from a replica.
    job = SearchJob.objects.select_related("probe", "offense_category", "authorisation").get(pk=job_id)
    # Every commit the search depends on (the job's own, the galleries as the officer saw them) lies at or
    # before this position: a replica the search reads must have replayed it (portal/db_routing.py).
    min_lsn = db_routing.primary_wal_lsn()
    context = {"job_id": job_id, "agency_id": job.agency_id, "attempt": attempt}
    logger.info("Search job %s started, attempt %s", job_id, attempt, extra=context)
    timings: dict[str, float] = {}
    try:
        with jobs.Heartbeat(job_id, attempt):
            # Its reads (galleries, thresholds, the vector search) go to such a replica, else to the primary; the
            # replica is chosen at the first read, after the faces are found, which gives it time to catch up.
            results, thresholds = db_routing.replica_read(
                lambda: _analyse_and_search(job, attempt, timings), min_lsn=min_lsn
            )
    except (PhotoRejected, NoFaceFound) as exc:
        jobs.search_job_fail(job_id=job_id, attempt=attempt, reason=str(exc), timings=timings)
        logger.info("Search job %s failed: %s", job_id, exc, extra=context)
        return
    except Exception as exc:
        logger.exception("Search job %s failed on attempt %s", job_id, attempt, extra=context)
        if attempt >= settings.SEARCH_MAX_ATTEMPTS:
            jobs.search_job_fail(
                job_id=job_id,
                attempt=attempt,
                timings=timings,
                reason=f"The search could not be completed: {type(exc).__name__}: {exc}",
            )
            return
        # Hand it back and try again shortly; the attempt count bounds the retries. Not published until
        # the broker has the message: should it be unreachable now, the sweeper publishes the job later.
        if jobs.search_job_requeue(job_id=job_id, attempt=attempt, error=str(exc)):
            jobs.search_job_enqueue(job_id, countdown=5)
        return
    _finish_done(job, attempt, results, thresholds, timings)
    logger.info("Search job %s ran to its end: %s faces, stages %s ms", job_id, len(results), timings, extra=context)


def _analyse_and_search(job: SearchJob, attempt: int, timings: dict) -> list:
    with timed(timings, "decode"):
        with default_storage.open(job.probe.searched_image.name, "rb") as stored:
            photo = decode_photo(stored.read())
    engine = get_engine(job.engine)
    photo_faces = PhotoFaces(photo.image, engine, timings)
    found_faces = photo_faces.find(sensitive=job.sensitive)
    if settings.SEARCH_DRILL_PAUSE_SECONDS:
        time.sleep(settings.SEARCH_DRILL_PAUSE_SECONDS)
    if not found_faces:
        raise NoFaceFound(NO_FACE_FOUND)
    faces = faces_chosen(found_faces, job.face_choice)
    if not faces:
        raise NoFaceFound("The faces chosen before the search were not found again on the photo.")
    # Kept with the job when its results are written (search_job_run → _finish_done).
    job.face_choice = (job.face_choice or {"mode": "all"}) | {"found": len(found_faces), "searched": len(faces)}

    jobs.search_job_stage_set(job_id=job.id, attempt=attempt, stage=SearchJob.Stage.SEARCHING)
    with timed(timings, "calibrate"):
        galleries = gallery_ids_by_engine(agency_id=job.agency_id)
        # The threshold is the agency's for all its galleries (a narrower scope only makes it stricter than
        # needed); the galleries read are those the case's authorisation covers.
        thresholds = calibration.search_thresholds(agency_id=job.agency_id, galleries=galleries)
        galleries = lawful_use.authorised_galleries(job.authorisation, galleries)
    include_minors = bool(job.offense_category and job.offense_category.is_missing_person)
    found: list[list[tuple]] = [[] for _ in faces]
    # Each gallery is searched with its own engine (a gallery being re-embedded keeps its old one until
    # the new descriptors are complete), so the probe is described once per engine in use.
    for engine_name, gallery_ids in galleries.items():
        embeddings = (
            [face.embedding for face in faces]
            if engine_name == job.engine
            else _describe_with(engine_name, photo.image, faces, timings, job.sensitive)
        )
        with timed(timings, "search"):
            for number, embedding in enumerate(embeddings):
                if embedding is None:
                    continue
                found[number] += [
                    (hit, engine_name)
                    for hit in index.nearest_profiles(
                        embedding,
                        engine=engine_name,
                        gallery_ids=gallery_ids,
                        limit=job.top_k,
                        include_minors=include_minors,
                    )
                ]
    timings.setdefault("search", 0.0)
    bounds = {engine_name: threshold.distance for engine_name, threshold in thresholds.items()}
    hits_per_face = [_best_per_profile(hits, job.top_k, bounds) for hits in found]

    jobs.search_job_stage_set(job_id=job.id, attempt=attempt, stage=SearchJob.Stage.RENDERING)
    results = []
    for number, (face, hits) in enumerate(zip(faces, hits_per_face, strict=True), start=1):
        # Deterministic names: a re-run overwrites its own crops instead of leaving orphans.
        crop_name = media_store(f"crops/probes/{job.code}/face-{number}.jpg", photo_faces.crop_jpeg(face))
        results.append((number, face, crop_name, hits))
    return results, thresholds


def faces_chosen(faces: list, choice: dict) -> list:
    """The faces a job searches (SearchJob.face_choice): every one; those of usable quality (all of them if
    none is, so that the answer says why); or those chosen on the prepared photo, found again by their boxes."""
    mode = (choice or {}).get("mode", "all")
    if mode == "usable":
        return [face for face in faces if quality_usable(face.quality)] or faces
    if mode == "chosen":
        kept = {id(match): match for box in choice.get("boxes", []) if (match := same_face(box, faces)) is not None}
        return [face for face in faces if id(face) in kept]
    return faces


def _best_per_profile(hits: list[tuple], limit: int, bounds: dict[str, float]) -> list[tuple]:
    """Distances of two engines compare through their thresholds; one entry per profile, closest first."""
    ranked = sorted(hits, key=lambda pair: pair[0].distance / bounds[pair[1]])
    seen, best = set(), []
    for hit, engine_name in ranked:
        if hit.profile_id not in seen:
            seen.add(hit.profile_id)
            best.append((hit, engine_name))
    return best[:limit]


def _describe_with(engine_name: str, image, faces: list, timings: dict, sensitive: bool) -> list:
    """Descriptors of another engine for the same faces, matched by box overlap (None where unmatched)."""
    other = PhotoFaces(image, get_engine(engine_name), timings).find(sensitive=sensitive)
    return [match.embedding if (match := same_face(face.box, other)) is not None else None for face in faces]


def _finish_done(job: SearchJob, attempt: int, results: list, thresholds: dict, timings: dict) -> None:
    with transaction.atomic():
        current = jobs.search_job_lock_owned(job_id=job.id, attempt=attempt)
        if current is None:
            return  # another worker took the job over; its results stand
        # One candidate set per job: a re-run replaces what an interrupted run wrote.
        ProbeFace.objects.filter(probe_id=job.probe_id).delete()
        # A face purged or erased while this search ran is not returned.
        still_held = set(
            FaceImage.objects.filter(
                id__in=[hit.face_image_id for _, _, _, hits in results for hit, _ in hits]
            ).values_list("id", flat=True)
        )
        candidates, decisions = [], []
        for number, face, crop_name, hits in results:
            kept = [(hit, engine_name) for hit, engine_name in hits if hit.face_image_id in still_held]
            usable = quality_usable(face.quality)
            decision = face_decision(
                usable=usable, compared=[(hit.distance, thresholds[engine_name].distance) for hit, engine_name in kept]
            )
            decisions.append(decision)
            probe_face = ProbeFace.objects.create(
                probe_id=job.probe_id,
                index=number,
                box=face.box,
                landmarks=face.landmarks,
                embedding=face.embedding,
                engine=job.engine,
                quality=face.quality,
                decision=decision,
                crop=crop_name,
            )
            candidates += [
                Candidate(
                    job_id=job.id,
                    probe_face=probe_face,
                    profile_id=hit.profile_id,
                    engine=engine_name,
                    face_image_id=hit.face_image_id,
                    distance=hit.distance,
                    rank=rank,
                    likely=usable and hit.distance <= thresholds[engine_name].distance,
                )
                for rank, (hit, engine_name) in enumerate(kept, start=1)
            ]
        Candidate.objects.bulk_create(candidates)
        recorded = {engine_name: threshold.as_json() for engine_name, threshold in thresholds.items()}
        SearchJob.objects.filter(pk=job.id).update(
            face_choice=job.face_choice,
            thresholds=recorded,
            threshold=thresholds[job.engine].distance if job.engine in thresholds else job.threshold,
        )
        jobs.search_job_mark_done(job_id=job.id, timings=timings)
        # Recorded also when nothing was found: searches that found no one are audited too.
        audit_record(
            action=AuditEntry.Action.SEARCH_RESULTS,
            actor=current.started_by,
            case=job.probe.case,
            target=current,
            detail=f"{len(candidates)} candidates for {len(results)} faces",
            data={
                "candidate_ids": [c.id for c in candidates],
                "profile_ids": [c.profile_id for c in candidates],
                "likely": sum(bool(c.likely) for c in candidates),
                "faces": len(results),
                "decisions": decisions,
                "thresholds": {
                    name: {"distance": t.distance, "calibration_id": t.calibration_id, "version": t.version}
                    for name, t in thresholds.items()
                },
            },
        )
