"""Reads for galleries, probes and search jobs, always scoped to an agency."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from search.models import Candidate, Gallery, SearchJob


def galleries_searchable_by(*, agency_id: int) -> QuerySet[Gallery]:
    """The galleries an agency owns plus those shared with it."""
    return Gallery.objects.filter(Q(owner_id=agency_id) | Q(shared_with__id=agency_id)).distinct()


def gallery_ids_searchable_by(*, agency_id: int, engine: str) -> list[int]:
    return list(galleries_searchable_by(agency_id=agency_id).filter(engine=engine).values_list("id", flat=True))


def search_job_get(*, agency_id: int, job_id: int) -> SearchJob | None:
    return SearchJob.objects.select_related("probe", "probe__case").filter(pk=job_id, agency_id=agency_id).first()


def search_job_candidates(*, job: SearchJob) -> QuerySet[Candidate]:
    return (Candidate.objects.filter(job=job)
            .select_related("probe_face", "profile", "profile__gallery", "face_image")
            .order_by("probe_face__index", "rank"))


def search_job_result(*, job: SearchJob) -> dict:
    """The job as the search_photo contract prints it."""
    faces = []
    candidates = list(search_job_candidates(job=job))
    for probe_face in job.probe.faces.order_by("index"):
        faces.append({
            "box": list(probe_face.box),
            "candidates": [
                {"rank": c.rank, "profile": c.profile.display_name, "profile_id": c.profile_id,
                 "distance": round(c.distance, 4), "match": c.is_match(job.threshold)}
                for c in candidates if c.probe_face_id == probe_face.id
            ],
        })
    return {
        "job": job.id,
        "status": job.status,
        "error": job.error or None,
        "faces": faces if job.status == SearchJob.Status.DONE else [],
    }
