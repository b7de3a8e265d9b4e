"""Data-subject rights: filing access and erasure requests, the privacy officer's search, the export,
and complete erasure with tombstones that refuse the same face later, whatever engine enrols it.

A match is released or erased only when the one open-set decision (search.open_set) calls it likely: the
request photo searched every gallery of the deployment, so each engine's threshold is the one calibrated to
all the faces of that engine (calibration.deployment_threshold)."""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import secrets
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from accounts.models import Agency, Role, User
from portal.audit import audit_record
from portal.models import AuditEntry, Case
from search import index
from search.calibration import deployment_threshold
from search.enrolment import EnrolmentSkipped, enrolment_quality_gate, face_described_with, stored_image
from search.faces import ENGINES, EngineNotAvailable, engine_threshold, get_engine, quality_usable
from search.imaging import PhotoRejected, decode_photo, encode_jpeg
from search.models import Candidate, FaceImage, Gallery, Profile, SearchJob, SubjectRequest, Tombstone
from search.open_set import DECISION_WORDS, LIKELY, face_decision
from search.photo_faces import PhotoFaces
from search.storage import media_available_check, media_delete, media_delete_on_commit, media_location, media_store

logger = logging.getLogger(__name__)

REQUEST_DUE_DAYS = 30
MAX_MATCHES = 50


class RequestRefused(ValueError):
    """A request that cannot be filed or processed, with the reason."""


def _one_clear_face(data: bytes):
    """The decoded photo and its one clear face, or RequestRefused saying what is wrong."""
    try:
        photo = decode_photo(data)
    except PhotoRejected as exc:
        raise RequestRefused(str(exc)) from None
    faces_in_photo = PhotoFaces(photo.image, get_engine(settings.FACE_ENGINE))
    try:
        face = enrolment_quality_gate(faces_in_photo.find())
    except EnrolmentSkipped as exc:
        raise RequestRefused(f"{exc} The photo must show your face alone, clearly.") from None
    return photo, face


@transaction.atomic
def subject_request_file(*, kind: str, data: bytes, contact: str, ip_address: str | None = None) -> SubjectRequest:
    """File a request; a reference and a due date 30 days later. No limit on how often a person asks."""
    if kind not in SubjectRequest.Kind.values:
        raise RequestRefused("A request is for access or for erasure.")
    if "@" not in contact:
        raise RequestRefused("Give an e-mail address to answer to.")
    photo, _ = _one_clear_face(data)
    now = timezone.now()
    reference = f"SR-{now:%Y}-{secrets.token_hex(4).upper()}"
    name = media_store(f"subject-requests/{reference}/photo.jpg", encode_jpeg(photo.image))
    try:
        request = SubjectRequest.objects.create(
            reference=reference,
            kind=kind,
            contact=contact,
            photo=name,
            photo_hash=photo.content_hash,
            created_at=now,
            due_at=now + timedelta(days=REQUEST_DUE_DAYS),
            ip_address=ip_address,
        )
        audit_record(
            action=AuditEntry.Action.SUBJECT_REQUEST_FILED,
            target=request,
            ip_address=ip_address,
            detail=f"{kind} request {reference}",
            data={"photo_hash": photo.content_hash},
        )
    except Exception:
        media_delete(name)
        raise
    return request


def _require_privacy_officer(user: User) -> None:
    if user.role != Role.PRIVACY_OFFICER:
        raise RequestRefused("Only a privacy officer works data-subject requests.")


def subject_request_search(*, request: SubjectRequest, user: User) -> list[dict]:
    """Search the request's photo against every gallery of every agency: its own audited action,
    outside any case. One entry per profile within the engine's mate-based bound, each with the decision:
    likely only at or under the threshold calibrated to every face of that engine (the likely ones first)."""
    _require_privacy_officer(user)
    if request.status != SubjectRequest.Status.RECEIVED:
        raise RequestRefused(f"Request {request.reference} is already {request.get_status_display().lower()}.")
    with default_storage.open(request.photo.name, "rb") as stored:
        photo, face = _one_clear_face(stored.read())
    galleries_by_engine: dict[str, list[int]] = {}
    for gallery_id, engine_name in Gallery.objects.values_list("id", "engine"):
        galleries_by_engine.setdefault(engine_name, []).append(gallery_id)
    found, thresholds, not_described = [], {}, []
    # Each gallery is searched with its own engine, so the photo is described once per engine in use.
    for engine_name, gallery_ids in sorted(galleries_by_engine.items()):
        try:
            described = (
                face if engine_name == settings.FACE_ENGINE else face_described_with(engine_name, photo.image, face.box)
            )
        except EngineNotAvailable as exc:
            raise RequestRefused(f"The galleries of {engine_name} cannot be searched: {exc}") from None
        if described is None:
            not_described.append(engine_name)
            continue
        threshold = thresholds[engine_name] = deployment_threshold(engine=engine_name)
        usable = quality_usable(described.quality)
        hits = index.nearest_profiles(
            described.embedding, engine=engine_name, gallery_ids=gallery_ids, limit=MAX_MATCHES, include_minors=True
        )
        # Beyond the mate-based bound no face is the same person: not even listed for the officer.
        found += [
            (hit, engine_name, face_decision(usable=usable, compared=[(hit.distance, threshold.distance)]))
            for hit in hits
            if hit.distance <= engine_threshold(engine_name)
        ]
    # Distances of two engines compare through their thresholds; likely matches first.
    found.sort(key=lambda row: (row[2] != LIKELY, row[0].distance / thresholds[row[1]].distance))
    profile_ids = {hit.profile_id for hit, _, _ in found}
    profiles = Profile.objects.select_related("gallery", "gallery__owner").in_bulk(profile_ids)
    matches, seen = [], set()
    for hit, engine_name, decision in found:
        if hit.profile_id in seen or hit.profile_id not in profiles:
            continue
        seen.add(hit.profile_id)
        profile = profiles[hit.profile_id]
        matches.append(
            {
                "profile_id": hit.profile_id,
                "profile": profile.display_name,
                "gallery": profile.gallery.name,
                "agency": profile.gallery.owner.name,
                "distance": round(hit.distance, 4),
                "engine": engine_name,
                "threshold": thresholds[engine_name].distance,
                "decision": decision,
            }
        )
    matches = matches[:MAX_MATCHES]
    likely = [m["profile_id"] for m in matches if m["decision"] == LIKELY]
    with transaction.atomic():
        SubjectRequest.objects.filter(pk=request.pk).update(matches=matches)
        audit_record(
            action=AuditEntry.Action.SUBJECT_SEARCH,
            actor=user,
            target=request,
            detail=f"{len(matches)} matching profiles for {request.reference}, {len(likely)} likely",
            data={
                "profile_ids": [m["profile_id"] for m in matches],
                "likely_profile_ids": likely,
                "thresholds": {name: threshold.as_json() for name, threshold in thresholds.items()},
                # Galleries of these engines were not searched: the engine found no face where the photo's is.
                "engines_without_face": not_described,
            },
        )
    request.matches = matches
    return matches


def match_is_likely(match: dict) -> bool:
    """Whether a stored match may be released or erased: only what the decision calls a likely match."""
    return match.get("decision") == LIKELY


def match_decision_words(match: dict) -> str:
    """The decision on a stored match in words, with the figures it rests on."""
    if "decision" not in match:
        return "Matched before the likely-match decision: search again"
    figures = f"{match['engine']}: distance {match['distance']:.3f}"
    if match["decision"] == LIKELY:
        figures += f" under the likely-match threshold {match['threshold']:.3f}"
    elif match["distance"] > match["threshold"]:
        figures += f" over the likely-match threshold {match['threshold']:.3f}"
    return f"{DECISION_WORDS[match['decision']]} ({figures})"


def _profile_provenance(profile: Profile) -> dict:
    gallery = profile.gallery
    return {
        "profile": profile.display_name,
        "aliases": profile.aliases,
        "date_of_birth": profile.date_of_birth.isoformat() if profile.date_of_birth else None,
        "record_reference": profile.record_reference,
        "gallery": gallery.name,
        "agency": gallery.owner.name,
        "source_type": gallery.get_source_type_display(),
        "legal_basis": gallery.legal_basis,
        "legal_basis_reference": gallery.legal_basis_reference,
        "responsible_person": gallery.responsible_person,
        "retention_days": gallery.retention_days,
        "face_images": [
            {
                "file": f"images/{face.code}.jpg",
                "source": face.source_name,
                "enrolled_at": face.created_at.isoformat(),
                "enrolled_by": face.enrolled_by.username if face.enrolled_by else None,
            }
            for face in profile.face_images.select_related("enrolled_by")
        ],
    }


@dataclass
class AccessOutcome:
    matches: list[dict]
    export_path: str  # the export's local path, or s3://bucket/name in the object store


@dataclass
class ErasureOutcome:
    erased_profiles: list[dict]
    files_removed: int


def subject_request_complete(
    *, request: SubjectRequest, user: User, profile_ids: list[int], identity_note: str
) -> AccessOutcome | ErasureOutcome:
    """The privacy officer's decision: identity verified (recorded), then the export or the erasure of
    the profiles they confirm (a subset of the matches)."""
    _require_privacy_officer(user)
    if request.status != SubjectRequest.Status.RECEIVED:
        raise RequestRefused(f"Request {request.reference} is already {request.get_status_display().lower()}.")
    matched = {m["profile_id"]: m for m in request.matches}
    if not set(profile_ids) <= set(matched):
        raise RequestRefused("Only profiles that matched the request's photo can be released or erased.")
    # Another person is never released or erased: a match the decision does not call likely is refused here too.
    refused = [matched[pid] for pid in dict.fromkeys(profile_ids) if not match_is_likely(matched[pid])]
    if refused:
        raise RequestRefused(
            "Only likely matches can be released or erased; not "
            + "; ".join(f"{m['profile']} ({m['gallery']}, {m['agency']}): {match_decision_words(m)}" for m in refused)
            + "."
        )
    if not identity_note.strip():
        raise RequestRefused("Record how the requester's identity was verified.")
    if request.kind == SubjectRequest.Kind.ACCESS:
        return _complete_access(request, user, profile_ids, identity_note)
    return _complete_erasure(request, user, profile_ids, identity_note)


def _finish(
    request: SubjectRequest,
    user_id: int | None,
    identity_note: str,
    outcome: dict,
    export_name: str = "",
    completed_at: datetime | None = None,
) -> None:
    photo_name = request.photo.name
    SubjectRequest.objects.filter(pk=request.pk).update(
        status=SubjectRequest.Status.COMPLETED,
        identity_verified_by_id=user_id,
        identity_note=identity_note.strip(),
        completed_by_id=user_id,
        completed_at=completed_at or timezone.now(),
        export=export_name,
        outcome=outcome,
        photo="",
    )
    # The request's own photo is not kept once the request is answered; its hash stays.
    transaction.on_commit(lambda: media_delete(photo_name))


def _complete_access(request, user, profile_ids, identity_note) -> AccessOutcome:
    profiles = Profile.objects.select_related("gallery", "gallery__owner").filter(id__in=profile_ids)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "profiles.json",
            json.dumps(
                {"reference": request.reference, "profiles": [_profile_provenance(p) for p in profiles]}, indent=2
            ),
        )
        for face in FaceImage.objects.filter(profile__in=profiles):
            with default_storage.open(face.image.name, "rb") as stored:
                archive.writestr(f"images/{face.code}.jpg", stored.read())
    # A second export of the same request replaces the first instead of keeping both.
    name = media_store(f"subject-requests/{request.reference}/export.zip", buffer.getvalue())
    matches = [m for m in request.matches if m["profile_id"] in set(profile_ids)]
    with transaction.atomic():
        _finish(request, user.id, identity_note, {"released_profiles": matches}, export_name=name)
        audit_record(
            action=AuditEntry.Action.SUBJECT_ACCESS_RELEASED,
            actor=user,
            target=request,
            detail=f"{len(matches)} profiles released for {request.reference}",
            data={"profile_ids": profile_ids},
        )
    return AccessOutcome(matches=matches, export_path=media_location(name))


@dataclass
class _Erasure:
    erased: list[dict] = field(default_factory=list)  # the request's outcome: names, for the privacy officer
    files: list[str] = field(default_factory=list)
    register_profiles: list[dict] = field(default_factory=list)  # ids, codes and photo hashes: no names
    tombstones: list[dict] = field(default_factory=list)


def engines_installed() -> list[str]:
    """The engines of the registry this installation can run."""
    installed = []
    for name in ENGINES:
        try:
            get_engine(name)
        except EngineNotAvailable:
            continue
        installed.append(name)
    return installed


def _erased_descriptors(faces: list[FaceImage], engines: list[str]) -> list[dict]:
    """Each erased photo described by every installed engine, so that its tombstones refuse it whatever engine a
    gallery enrols it with later: {"face": the code of the photo's row, "engine", "embedding"} per engine, the
    stored descriptor where the photo has one of that engine (a gallery being re-embedded holds two)."""
    by_photo: dict[str, list[FaceImage]] = {}
    for face in faces:
        by_photo.setdefault(face.content_hash, []).append(face)
    descriptors = []
    for rows in by_photo.values():
        stored = {row.engine: row.embedding for row in rows}
        first, image = rows[0], None
        for name in dict.fromkeys([*stored, *engines]):
            embedding = stored.get(name)
            if embedding is None:
                try:
                    if image is None:
                        with default_storage.open(first.image.name, "rb") as photo_file:
                            image = stored_image(photo_file.read())
                    found = face_described_with(name, image, first.box)
                except OSError:
                    # The photo cannot be read: its own engine's tombstone stands; the erasure goes on.
                    logger.warning("Erased face %s: photo unreadable, no %s tombstone", first.code, name)
                    break
                if found is None:
                    continue  # that engine finds no face where the enrolled one is
                embedding = found.embedding
            descriptors.append({"face": str(first.code), "engine": name, "embedding": [float(v) for v in embedding]})
    return descriptors


def candidates_erased(candidates, *, reason: str, erased_at: datetime) -> int:
    """Mark past candidates as erased and tell each searching agency, in its own audit trail, that a candidate of
    its search was erased and when: a verdict on a person who is no longer held must not change silently. The
    entry names the search, never the person."""
    affected = list(
        candidates.values("job_id", "job__code", "job__agency_id", "job__probe__case_id")
        .annotate(count=Count("id"))
        .order_by("job_id")
    )
    count = candidates.update(erased_at=erased_at, erased_reason=reason)
    for row in affected:
        audit_record(
            action=AuditEntry.Action.CANDIDATE_ERASED,
            agency=Agency.objects.get(pk=row["job__agency_id"]),
            case=Case.objects.get(pk=row["job__probe__case_id"]),
            target=SearchJob.objects.get(pk=row["job_id"]),
            detail=f"{row['count']} candidate{'s' if row['count'] != 1 else ''} of this search "
            f"{'were' if row['count'] != 1 else 'was'} {reason} on {erased_at:%d %b %Y}",
            data={"job": str(row["job__code"]), "candidates": row["count"], "reason": reason},
        )
    return count


def _profiles_erase(*, profile_ids: list[int], request: SubjectRequest | None, erased_at: datetime) -> _Erasure:
    """Erase profiles completely, in the caller's transaction: a tombstone per face and installed engine, past results
    marked, the rows deleted. The files are the caller's to delete once the transaction commits."""
    erasure = _Erasure()
    profiles = list(
        Profile.objects.select_for_update().select_related("gallery", "gallery__owner").filter(id__in=profile_ids)
    )
    engines = engines_installed()
    for profile in profiles:
        faces = list(profile.face_images.all())
        descriptors = _erased_descriptors(faces, engines)
        Tombstone.objects.bulk_create(
            [Tombstone(engine=d["engine"], embedding=d["embedding"], request=request) for d in descriptors]
        )
        erasure.files += [name for f in faces for name in (f.image.name, f.crop.name) if name]
        # Past results keep their rows as an "erased" marker: ids for the audit trail, never a face.
        candidates_erased(
            Candidate.objects.filter(profile=profile), reason="erased at the person's request", erased_at=erased_at
        )
        erasure.erased.append(
            {
                "profile_id": profile.id,
                "profile": profile.display_name,
                "gallery": profile.gallery.name,
                "agency": profile.gallery.owner.name,
                "face_images": len(faces),
            }
        )
        erasure.register_profiles.append(
            {
                "id": profile.id,
                "code": str(profile.code),
                "gallery_id": profile.gallery_id,
                "face_images": [
                    {"id": f.id, "code": str(f.code), "content_hash": f.content_hash, "engine": f.engine} for f in faces
                ],
            }
        )
        erasure.tombstones += descriptors
        profile.delete()
    return erasure


def _complete_erasure(request, user, profile_ids, identity_note) -> ErasureOutcome:
    media_available_check()  # an outage refuses the erasure: it never leaves the person's photos in the store
    erased_at = timezone.now()
    with transaction.atomic():
        erasure = _profiles_erase(profile_ids=profile_ids, request=request, erased_at=erased_at)
        erased, files = erasure.erased, erasure.files
        _finish(
            request,
            user.id,
            identity_note,
            {"erased_profiles": erased, "files_removed": len(files)},
            completed_at=erased_at,
        )
        audit_record(
            action=AuditEntry.Action.SUBJECT_ERASED,
            actor=user,
            target=request,
            detail=f"{len(erased)} profiles erased for {request.reference}",
            data={"profile_ids": [e["profile_id"] for e in erased], "files_removed": len(files)},
        )
        # Last, before the commit: an erasure is never committed without its line (a restore would bring the
        # person back). A line whose commit then fails only makes a restore erase what the officer approved.
        erasure_register_append(
            {
                "format": 1,
                "reference": request.reference,
                "request_id": request.id,
                "erased_at": erased_at.isoformat(),
                "completed_by_id": user.id,
                "identity_note": identity_note.strip(),
                "profiles": erasure.register_profiles,
                "tombstones": erasure.tombstones,
            }
        )
        # Files go only once the rows are gone for good.
        media_delete_on_commit(*files)
    return ErasureOutcome(erased_profiles=erased, files_removed=len(files))


# --- The erasure register: what a restore of an older backup must erase again ---------------------

ERASURE_REGISTER_NAME = "erasure-register.jsonl"


class ErasureRegisterDamaged(ValueError):
    """A line of the erasure register that cannot be read (other than a torn last line)."""


def erasure_register_path() -> Path:
    return Path(settings.BACKUP_DIR) / ERASURE_REGISTER_NAME


def erasure_register_append(line: dict) -> None:
    """Append one erasure to the register, durably: on disk (fsync) before this returns."""
    path = erasure_register_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    created = not path.exists()
    # Readable by the portal's user only: it holds the erased faces' descriptors, as the tombstones do.
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "a", encoding="utf-8") as register:
        # One writer at a time, so that two erasures' lines never interleave.
        fcntl.flock(register, fcntl.LOCK_EX)
        register.write(json.dumps(line, separators=(",", ":")) + "\n")
        register.flush()
        os.fsync(register.fileno())
    if created:  # the new file's directory entry must reach the disk too
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def erasure_register_read() -> list[dict]:
    """Every erasure of the register, oldest first. A torn last line (a crash while writing, before its erasure
    was committed) is left out; any other unreadable line raises ErasureRegisterDamaged."""
    path = erasure_register_path()
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    entries = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict) or not entry.get("reference"):
                raise ValueError("not an erasure")
            datetime.fromisoformat(entry["erased_at"])
            if not all(recorded.get("code") for recorded in entry["profiles"]):
                raise ValueError("a profile without its code")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            if number == len(lines) and not text.endswith("\n"):
                continue
            raise ErasureRegisterDamaged(f"{path}, line {number}: {exc}") from None
        entries.append(entry)
    return entries


def erasure_reapply(*, entry: dict, backup_created_at: datetime) -> dict | None:
    """After a restore, erase again what a register entry erased, through the same steps as the privacy officer's
    erasure, and record it in the audit log. None when there was nothing to do (an erasure older than the backup
    whose profiles are gone from it)."""
    erased_at = datetime.fromisoformat(entry["erased_at"])
    # By code only: another profile holding the same photo was not the privacy officer's decision.
    codes = [recorded["code"] for recorded in entry["profiles"]]
    with transaction.atomic():
        profile_ids = list(Profile.objects.filter(code__in=codes).order_by("id").values_list("id", flat=True))
        if not profile_ids and erased_at <= backup_created_at:
            return None
        request = SubjectRequest.objects.filter(reference=entry["reference"]).first()
        erasure = _profiles_erase(profile_ids=profile_ids, request=request, erased_at=erased_at)
        # Profiles enrolled after the backup are not in it: their tombstones come from the register.
        missing = [
            t
            for t in entry.get("tombstones", [])
            if not Tombstone.objects.filter(engine=t["engine"], embedding=t["embedding"]).exists()
        ]
        Tombstone.objects.bulk_create(
            [Tombstone(engine=t["engine"], embedding=t["embedding"], request=request) for t in missing]
        )
        if request is not None and request.status != SubjectRequest.Status.COMPLETED:
            officer_id = entry.get("completed_by_id")
            officer_id = officer_id if User.objects.filter(id=officer_id).exists() else None
            _finish(
                request,
                officer_id,
                entry.get("identity_note", ""),
                {"erased_profiles": erasure.erased, "files_removed": len(erasure.files)},
                completed_at=erased_at,
            )
        outcome = {
            "reference": entry["reference"],
            "erased_at": entry["erased_at"],
            "profile_ids": [e["profile_id"] for e in erasure.erased],
            "files_removed": len(erasure.files),
            "tombstones_restored": len(missing),
        }
        audit_record(
            action=AuditEntry.Action.SUBJECT_ERASED,
            username="restore",
            target=request,
            detail=f"Erasure {entry['reference']} re-applied after a restore: "
            f"{len(erasure.erased)} profiles erased again",
            data={**outcome, "reapplied": True, "backup_created_at": backup_created_at.isoformat()},
        )
        files = erasure.files
        media_delete_on_commit(*files)
    return outcome
