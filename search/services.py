"""Writes for probes; a probe's search is queued through search/jobs.py (enrolment's writes: search/enrolment/)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from portal.audit import audit_record
from portal.models import AuditEntry, Case
from search.faces import get_engine
from search.imaging import decode_photo, encode_jpeg
from search.jobs import search_job_enqueue
from search.models import OffenseCategory, Probe, SearchJob
from search.storage import media_delete, media_store


class SearchRefused(ValueError):
    """A search that cannot start, with the reason."""


# --- Probes and search jobs -------------------------------------------------------------------


def search_purpose_check(*, purpose: str, justification: str) -> tuple[OffenseCategory, str]:
    """The stated purpose of a search: an active offense category and a justification long enough."""
    purpose = (purpose or settings.SEARCH_DEFAULT_PURPOSE).strip()
    justification = (justification or settings.SEARCH_DEFAULT_JUSTIFICATION).strip()
    category = OffenseCategory.objects.filter(name__iexact=purpose, is_active=True).first()
    if category is None:
        names = ", ".join(OffenseCategory.objects.filter(is_active=True).values_list("name", flat=True))
        if not purpose:
            raise SearchRefused(f"State the purpose of the search: an offense category ({names}).")
        raise SearchRefused(f"Unknown offense category {purpose!r}; choose one of: {names}.")
    if len(justification) < settings.SEARCH_JUSTIFICATION_MIN_CHARS:
        raise SearchRefused(
            f"Justify the search in at least {settings.SEARCH_JUSTIFICATION_MIN_CHARS} characters: "
            "why is it needed for this case?"
        )
    return category, justification


def probe_submit(
    *,
    case: Case,
    uploaded_by: User,
    data: bytes,
    original_name: str = "",
    top_k: int | None = None,
    purpose: str = "",
    justification: str = "",
    ip_address: str | None = None,
    sensitive: bool = False,
) -> SearchJob:
    """Check and store a probe photo and queue its search; raises PhotoRejected or SearchRefused.

    A search needs an open case of the uploader's agency, an offense category and a justification.
    """
    if uploaded_by.agency_id is None or case.agency_id != uploaded_by.agency_id:
        raise SearchRefused("You can only search inside a case of your own agency.")
    if case.status != Case.Status.OPEN:
        raise SearchRefused(f"Case {case.number} is closed; reopen it to search.")
    category, justification = search_purpose_check(purpose=purpose, justification=justification)
    recent = SearchJob.objects.filter(
        started_by=uploaded_by, created_at__gte=timezone.now() - timedelta(minutes=1)
    ).count()
    if recent >= settings.UPLOADS_PER_MINUTE:
        raise SearchRefused(
            f"At most {settings.UPLOADS_PER_MINUTE} photos a minute per user: wait a moment and upload the rest."
        )
    top_k = top_k or settings.SEARCH_TOP_K
    if not 1 <= top_k <= 100:
        raise SearchRefused("The number of candidates must be between 1 and 100.")
    photo = decode_photo(data)  # nothing is stored for a photo that fails here

    engine = get_engine(settings.FACE_ENGINE)
    image_name = media_store(
        f"probes/{case.agency.code}/{photo.content_hash[:16]}-{timezone.now():%Y%m%d%H%M%S%f}.jpg",
        encode_jpeg(photo.image),
    )
    try:
        with transaction.atomic():
            probe = Probe.objects.create(
                agency_id=case.agency_id,
                case=case,
                uploaded_by=uploaded_by,
                image=image_name,
                original_name=original_name[:255],
                content_hash=photo.content_hash,
                width=photo.width,
                height=photo.height,
            )
            job = SearchJob.objects.create(
                agency_id=case.agency_id,
                probe=probe,
                started_by=uploaded_by,
                engine=engine.name,
                threshold=engine.default_threshold,
                top_k=top_k,
                offense_category=category,
                justification=justification,
                sensitive=sensitive,
            )
            audit_record(
                action=AuditEntry.Action.SEARCH_STARTED,
                actor=uploaded_by,
                case=case,
                target=job,
                ip_address=ip_address,
                detail=f"{category.name}: {justification}",
                data={
                    "purpose": category.name,
                    "justification": justification,
                    "probe_hash": photo.content_hash,
                    "probe": str(probe.code),
                    "job": str(job.code),
                },
            )
            job_id = job.id
            # Enqueue only after commit, or the worker may look for a row it can't see yet.
            transaction.on_commit(lambda: search_job_enqueue(job_id))
    except Exception:
        media_delete(image_name)
        raise
    return job
