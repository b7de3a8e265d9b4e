"""Writes for probes; a probe's search is queued through search/jobs.py (enrolment's writes: search/enrolment/)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from portal.audit import audit_record
from portal.models import AuditEntry, Case
from search import lawful_use, preparation
from search.faces import get_engine
from search.imaging import decode_photo, encode_jpeg
from search.jobs import search_job_enqueue
from search.models import NO_FACE_FOUND, OffenseCategory, Probe, ProbeEdit, ProbeVideo, SearchJob
from search.open_set import LOW_QUALITY
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
    face_choice: dict | None = None,
    video: ProbeVideo | None = None,
    frame_time_ms: int | None = None,
) -> SearchJob:
    """Check and store a probe photo and queue its search; raises PhotoRejected or SearchRefused.

    A search needs an open case of the uploader's agency, an offense category and a justification.
    face_choice says which faces are searched (SearchJob.face_choice; default every face). A still of a
    recorded video names its video and the frame's time, which travel with the probe.
    """
    category, justification, top_k, permit = _search_start_check(
        case=case,
        started_by=uploaded_by,
        purpose=purpose,
        justification=justification,
        top_k=top_k,
        ip_address=ip_address,
    )
    photo = decode_photo(data)  # nothing is stored for a photo that fails here
    image_name = media_store(_probe_image_name(case, photo.content_hash), encode_jpeg(photo.image))
    return _search_start(
        case=case,
        started_by=uploaded_by,
        probe_fields={
            "image": image_name,
            "original_name": original_name[:255],
            "content_hash": photo.content_hash,
            "width": photo.width,
            "height": photo.height,
        }
        | (
            {"video": video, "video_hash": video.content_hash, "frame_time_ms": frame_time_ms}
            if video is not None
            else {}
        ),
        category=category,
        justification=justification,
        top_k=top_k,
        sensitive=sensitive,
        ip_address=ip_address,
        face_choice=face_choice,
        permit=permit,
    )


def sensitive_retry_offered(*, job: SearchJob) -> bool:
    """Whether searching the same photo again with the sensitive detector may find what this search could not:
    no face at all, or a face too small or blurred to compare."""
    if job.sensitive or not job.probe.image:
        return False
    if job.status == SearchJob.Status.FAILED:
        return job.error == NO_FACE_FOUND
    return job.status == SearchJob.Status.DONE and job.probe.faces.filter(decision=LOW_QUALITY).exists()


def search_retry_sensitive(*, job: SearchJob, started_by: User, ip_address: str | None = None) -> SearchJob:
    """A new search of a job's probe photo with the sensitive detector, in the same case, with the same purpose
    and justification; raises SearchRefused."""
    if not sensitive_retry_offered(job=job):
        raise SearchRefused("This search cannot be repeated with the sensitive detector.")
    probe = job.probe
    category, justification, top_k, permit = _search_start_check(
        case=probe.case,
        started_by=started_by,
        purpose=job.offense_category.name if job.offense_category else "",
        justification=job.justification,
        top_k=job.top_k,
        ip_address=ip_address,
    )
    # A probe of its own over a copy of the photo: a finished search replaces its probe's faces (and with them
    # the candidates), so sharing the Probe would wipe the first search's results; a copy also outlives the
    # first probe's purge. A prepared probe's copy and its recorded edits come along.
    copies = [media_store(_probe_image_name(probe.case, probe.content_hash), _stored_bytes(probe.image))]
    if probe.prepared_image:
        copies.append(
            media_store(_probe_image_name(probe.case, probe.prepared_hash), _stored_bytes(probe.prepared_image))
        )
    fields = {
        "image": copies[0],
        "original_name": probe.original_name,
        "content_hash": probe.content_hash,
        "width": probe.width,
        "height": probe.height,
        "prepared_image": copies[1] if len(copies) > 1 else "",
        "prepared_hash": probe.prepared_hash,
        "video": probe.video,
        "video_hash": probe.video_hash,
        "frame_time_ms": probe.frame_time_ms,
    }
    try:
        with transaction.atomic():
            retry = _search_start(
                case=probe.case,
                started_by=started_by,
                probe_fields=fields,
                category=category,
                justification=justification,
                top_k=top_k,
                sensitive=True,
                ip_address=ip_address,
                retry_of=job,
                face_choice={k: v for k, v in job.face_choice.items() if k not in ("found", "searched")} or None,
                permit=permit,
            )
            ProbeEdit.objects.bulk_create(
                [
                    ProbeEdit(
                        probe_id=retry.probe_id,
                        **{
                            f: getattr(e, f)
                            for f in (
                                "number",
                                "operation",
                                "parameters",
                                "made_by_id",
                                "hash_before",
                                "hash_after",
                                "created_at",
                            )
                        },
                    )
                    for e in probe.edits.all()
                ]
            )
    except Exception:
        media_delete(*copies)
        raise
    return retry


def _stored_bytes(field) -> bytes:
    with field.open("rb") as stored:
        return stored.read()


def search_use_check(
    *, case: Case, user: User, category: OffenseCategory | None, ip_address: str | None = None
) -> lawful_use.SearchPermit:
    """The agency's policy on this search (search/lawful_use.py): the searcher's certification and the case's
    authorisation. A refusal is audited and raised as SearchRefused with its reason."""
    try:
        lawful_use.searcher_check(user)
        return lawful_use.case_search_check(case=case, category=category)
    except lawful_use.UseRefused as exc:
        audit_record(
            action=AuditEntry.Action.SEARCH_REFUSED,
            actor=user,
            agency=case.agency,
            case=case,
            target=case,
            ip_address=ip_address,
            detail=str(exc)[:300],
            data={"purpose": category.name if category else "", "reason": str(exc)},
        )
        raise SearchRefused(str(exc)) from None


def _search_start_check(
    *,
    case: Case,
    started_by: User,
    purpose: str,
    justification: str,
    top_k: int | None,
    ip_address: str | None = None,
) -> tuple[OffenseCategory, str, int, lawful_use.SearchPermit]:
    """What any search must pass before a photo is stored: the case, the purpose, the agency's policy (the
    searcher's certification, the case's authorisation), the rate limit, top_k."""
    if started_by.agency_id is None or case.agency_id != started_by.agency_id:
        raise SearchRefused("You can only search inside a case of your own agency.")
    if case.status != Case.Status.OPEN:
        raise SearchRefused(f"Case {case.number} is closed; reopen it to search.")
    category, justification = search_purpose_check(purpose=purpose, justification=justification)
    permit = search_use_check(case=case, user=started_by, category=category, ip_address=ip_address)
    recent = SearchJob.objects.filter(
        started_by=started_by, created_at__gte=timezone.now() - timedelta(minutes=1)
    ).count()
    if recent >= settings.UPLOADS_PER_MINUTE:
        raise SearchRefused(
            f"At most {settings.UPLOADS_PER_MINUTE} photos a minute per user: wait a moment and upload the rest."
        )
    top_k = top_k or settings.SEARCH_TOP_K
    if not 1 <= top_k <= 100:
        raise SearchRefused("The number of candidates must be between 1 and 100.")
    return category, justification, top_k, permit


def _probe_image_name(case: Case, content_hash: str) -> str:
    return f"probes/{case.agency.code}/{content_hash[:16]}-{timezone.now():%Y%m%d%H%M%S%f}.jpg"


def _search_start(
    *,
    case: Case,
    started_by: User,
    probe_fields: dict,
    category: OffenseCategory,
    justification: str,
    top_k: int,
    sensitive: bool,
    ip_address: str | None,
    retry_of: SearchJob | None = None,
    face_choice: dict | None = None,
    prepared_probe: Probe | None = None,
    permit: lawful_use.SearchPermit | None = None,
) -> SearchJob:
    """The probe over a stored image (or a prepared probe), its queued job and the audit entry, in one
    transaction; a newly stored image is deleted again if that fails."""
    engine = get_engine(settings.FACE_ENGINE)
    try:
        with transaction.atomic():
            if prepared_probe is None:
                probe = Probe.objects.create(
                    agency_id=case.agency_id, case=case, uploaded_by=started_by, **probe_fields
                )
            else:
                probe = Probe.objects.select_for_update().get(pk=prepared_probe.pk)
                if probe.jobs.exists():
                    raise SearchRefused("This photo was already searched.")
            authorisation = (
                lawful_use.search_permit_use(permit, case=case, user=started_by, ip_address=ip_address)
                if permit is not None
                else None
            )
            job = SearchJob.objects.create(
                agency_id=case.agency_id,
                probe=probe,
                started_by=started_by,
                engine=engine.name,
                threshold=engine.default_threshold,
                top_k=top_k,
                offense_category=category,
                justification=justification,
                sensitive=sensitive,
                face_choice=face_choice or {"mode": "all"},
                authorisation=authorisation,
            )
            data = {
                "purpose": category.name,
                "justification": justification,
                "probe_hash": probe.content_hash,
                "probe": str(probe.code),
                "job": str(job.code),
            }
            if permit is not None and permit.required:
                data |= {
                    "authorisation": str(authorisation.code) if authorisation else None,
                    "authorisation_status": authorisation.status if authorisation else None,
                    "authorised_under": lawful_use.authorisation_words(authorisation),
                }
            if retry_of is not None:
                data |= {"retry_of": str(retry_of.code), "sensitive": True}
            if prepared_probe is not None:
                edits = list(probe.edits.order_by("number").values("number", "operation", "hash_after"))
                data |= {
                    "prepared_hash": probe.prepared_hash,
                    "edits": [f"{e['number']}. {e['operation']} → {e['hash_after'][:16]}" for e in edits],
                    "faces_chosen": (face_choice or {}).get("numbers", []),
                }
            if probe.video_id is not None:
                data |= {
                    "video": str(probe.video.code),
                    "video_hash": probe.video_hash,
                    "frame_ms": probe.frame_time_ms,
                }
            audit_record(
                action=AuditEntry.Action.SEARCH_STARTED,
                actor=started_by,
                case=case,
                target=job,
                ip_address=ip_address,
                detail=f"{category.name}: {justification}",
                data=data,
            )
            job_id = job.id
            # Enqueue only after commit, or the worker may look for a row it can't see yet.
            transaction.on_commit(lambda: search_job_enqueue(job_id))
    except Exception:
        if prepared_probe is None:
            media_delete(probe_fields["image"])
        raise
    return job


# --- Probe preparation (the edits themselves: search/preparation.py) ---------------------------------


def probe_prepare_start(
    *,
    case: Case,
    uploaded_by: User,
    data: bytes,
    original_name: str = "",
    purpose: str = "",
    justification: str = "",
    sensitive: bool = False,
    ip_address: str | None = None,
) -> Probe:
    """Store a probe photo to prepare before its search: its faces are found by a worker, nothing is searched
    yet. The same checks as a search, so that preparing is never a way around them; raises PhotoRejected or
    SearchRefused."""
    category, justification, top_k, _permit = _search_start_check(
        case=case,
        started_by=uploaded_by,
        purpose=purpose,
        justification=justification,
        top_k=None,
        ip_address=ip_address,
    )
    photo = decode_photo(data)
    image_name = media_store(_probe_image_name(case, photo.content_hash), encode_jpeg(photo.image))
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
                pending_search={
                    "purpose": category.name,
                    "justification": justification,
                    "sensitive": sensitive,
                    "top_k": top_k,
                },
            )
            audit_record(
                action=AuditEntry.Action.PROBE_UPLOADED,
                actor=uploaded_by,
                case=case,
                target=probe,
                ip_address=ip_address,
                detail=f"{category.name}: {justification}",
                data={"probe": str(probe.code), "probe_hash": probe.content_hash, "purpose": category.name},
            )
            probe_id = probe.id
            transaction.on_commit(lambda: preparation.probe_preview_queue(probe_id))
    except Exception:
        media_delete(image_name)
        raise
    return probe


def probe_sensitive_preview(*, probe: Probe, user: User) -> None:
    """Look for the faces again with the sensitive detector (which the search will then use)."""
    preparation.edit_allowed(probe, user)
    pending = probe.pending_search | {"sensitive": True}
    Probe.objects.filter(pk=probe.pk, jobs__isnull=True).update(
        pending_search=pending, preview_hash="", preview_faces=[]
    )
    transaction.on_commit(lambda: preparation.probe_preview_queue(probe.pk))


def probe_prepared_search(
    *, probe: Probe, started_by: User, face_numbers: list[str], ip_address: str | None = None
) -> SearchJob:
    """Search the chosen faces of a prepared probe; raises SearchRefused."""
    try:
        preparation.edit_allowed(probe, started_by)
    except preparation.EditRefused as exc:
        raise SearchRefused(str(exc)) from None
    if probe.preview_hash != preparation.image_version(probe):
        raise SearchRefused("The faces of the photo are still being found: wait a moment and choose again.")
    faces = probe.preview_faces
    if not faces:
        raise SearchRefused(
            "No face was found on the photo as prepared: crop or rotate it, or look again with the sensitive detector."
        )
    try:
        numbers = sorted({int(n) for n in face_numbers})
    except (TypeError, ValueError):
        raise SearchRefused("Choose the faces to search by their numbers.") from None
    if not numbers:
        raise SearchRefused("Choose at least one face to search.")
    if numbers[0] < 1 or numbers[-1] > len(faces):
        raise SearchRefused(f"The photo has faces 1 to {len(faces)}; there is no face {numbers[-1]}.")
    pending = probe.pending_search
    category, justification, top_k, permit = _search_start_check(
        case=probe.case,
        started_by=started_by,
        purpose=pending.get("purpose", ""),
        justification=pending.get("justification", ""),
        top_k=pending.get("top_k"),
        ip_address=ip_address,
    )
    return _search_start(
        case=probe.case,
        started_by=started_by,
        probe_fields={},
        category=category,
        justification=justification,
        top_k=top_k,
        sensitive=bool(pending.get("sensitive")),
        ip_address=ip_address,
        face_choice={
            "mode": "chosen",
            "numbers": numbers,
            "boxes": [faces[n - 1]["box"] for n in numbers],
            "found": len(faces),
        },
        prepared_probe=probe,
        permit=permit,
    )
