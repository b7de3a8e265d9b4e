"""ANSI/NIST-ITL booking records: one transaction (file) is one subject, keyed by its state identification
number; each Type-10 FACE record is a photo of that subject. docs/nist-import.md has the field mapping.

Reading (`nist_subject_read`) touches no database; the import (`nist_files_import`) stores each subject in one
transaction, through the same quality gate, tombstones and minors rule as every gallery photo.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import date

import nistitl
from django.conf import settings
from django.db import transaction

from accounts.models import User
from portal.audit import audit_record
from portal.models import AuditEntry
from search.enrolment.analysis import EnrolmentSkipped, enrolment_analyse
from search.enrolment.store import EnrolmentSummary, GalleryRefused, face_image_store, gallery_get_or_create
from search.imaging import PhotoRejected, jpeg2000_to_jpeg
from search.models import Gallery, Profile
from search.storage import MediaUnavailable, media_delete

NIST_SIGNATURE = b"1.001:"
# A booking transaction holds a few photos (and perhaps fingerprints): a few photos' worth of bytes.
NIST_MAX_BYTES = 4 * settings.UPLOAD_MAX_BYTES
_FS, _GS = b"\x1c", b"\x1d"
_TAGGED_LEN = re.compile(rb"(\d{1,2})\.0*1:(\d{1,10})\x1d")
_BINARY_TYPES = (3, 4, 5, 6, 7, 8)  # records with a 4-byte length instead of a LEN field
_JPEG, _PNG = b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"
_JPEG2000 = (b"\xff\x4f\xff\x51", b"\x00\x00\x00\x0cjP  ")


class NistRefused(ValueError):
    """A NIST file (or one of its records) that is not imported, with the reason and a code to count by."""

    def __init__(self, message: str, code: str = "nist_refused"):
        super().__init__(message, code)
        self.code = code

    def __str__(self) -> str:
        return self.args[0]


@dataclass(frozen=True)
class NistFace:
    idc: int
    data: bytes  # JPEG or PNG, ready for the normal photo path (JPEG 2000 already re-encoded)
    compression: str  # 10.011 CGA as written


@dataclass
class NistSubject:
    name: str  # the file's name, as sent
    tcn: str
    sid: str
    display_name: str
    date_of_birth: date | None
    faces: list[NistFace]
    refused: list[dict] = field(default_factory=list)  # Type-10 records not taken: {"file", "reason", "code"}
    ignored: list[dict] = field(default_factory=list)  # Type-10 records of another image type: {"file", "note"}

    @property
    def record_reference(self) -> str:
        return self.sid or f"TCN {self.tcn}"


def is_nist(data: bytes) -> bool:
    return data[: len(NIST_SIGNATURE)] == NIST_SIGNATURE


def _structure_check(data: bytes) -> None:
    """Walk the records by their declared lengths: truncated and wrong-length files are named as such
    (nistitl reports both, but not always which)."""
    offset, number = 0, 0
    while offset < len(data):
        number += 1
        tagged = _TAGGED_LEN.match(data, offset)
        if tagged:
            kind, length = int(tagged.group(1)), int(tagged.group(2))
        elif number > 1 and len(data) - offset >= 4:
            kind, length = None, int.from_bytes(data[offset : offset + 4], "big")
        else:
            raise NistRefused(f"Record {number} has no length field: the file is damaged.", "nist_length")
        label = f"record {number} (Type-{kind})" if kind is not None else f"record {number}"
        if length <= 0:
            raise NistRefused(f"Wrong record length: {label} declares {length} bytes.", "nist_length")
        if offset + length > len(data):
            raise NistRefused(
                f"The file is truncated: {label} declares {length:,} bytes, only {len(data) - offset:,} remain.",
                "nist_truncated",
            )
        if kind is not None and data[offset + length - 1 : offset + length] != _FS:
            raise NistRefused(
                f"Wrong record length: {label} declares {length:,} bytes (field {kind}.001), which does not end "
                "where the record does.",
                "nist_length",
            )
        offset += length


def _text(record, tag: int) -> str:
    """A text field's value; the first subfield (first item) when it has several."""
    try:
        value = getattr(record, f"_{tag}")
    except nistitl.NistException:
        return ""
    while isinstance(value, (list, tuple)):
        value = value[0] if value else ""
    return str(value).strip()


def _display_name(nam: str) -> str:
    """NAM is "LAST,FIRST MIDDLE": shown given names first, letters as written ("DOE,JOHN" → "JOHN DOE")."""
    last, _, first = nam.partition(",")
    return " ".join(part for part in (first.strip(), last.strip()) if part)


def _date_of_birth(dob: str) -> date | None:
    if not dob:
        return None
    try:
        if re.fullmatch(r"\d{8}", dob):
            return date(int(dob[0:4]), int(dob[4:6]), int(dob[6:8]))
    except ValueError:
        pass
    # A wrong date would decide the minors rule wrongly: refused, not guessed.
    raise NistRefused(f"The date of birth (2.022) {dob[:20]!r} is not a date YYYYMMDD.", "nist_field")


def _face_image(data: bytes, label: str) -> bytes:
    if data.startswith((_JPEG, _PNG)):
        return data
    if data.startswith(_JPEG2000):
        try:
            return jpeg2000_to_jpeg(data)
        except PhotoRejected as exc:
            raise NistRefused(f"{label}: {exc}", "unreadable") from None
    raise NistRefused(f"{label}: the image (10.999) is not a JPEG, PNG or JPEG 2000 image.", "unreadable")


def nist_subject_read(data: bytes, name: str) -> NistSubject:
    """The subject of one ANSI/NIST-ITL transaction, or NistRefused with the reason."""
    if not data:
        raise NistRefused("The file is empty.", "not_nist")
    if len(data) > NIST_MAX_BYTES:
        raise NistRefused(
            f"The file is too large ({len(data) / 2**20:.1f} MB); the limit is {NIST_MAX_BYTES / 2**20:.1f} MB.",
            "too_large",
        )
    if not is_nist(data):
        kind = " (it is a photo: enrol it with the photo form)" if data.startswith((_JPEG, _PNG)) else ""
        raise NistRefused(f"Not an ANSI/NIST-ITL file{kind}: it does not begin with field 1.001.", "not_nist")
    _structure_check(data)
    message = nistitl.Message()
    try:
        message.parse(data)
    except nistitl.NistException as exc:
        code = {"NIST_TOO_SHORT": "nist_truncated", "NIST_TOO_LONG": "nist_length"}.get(exc.error.name, "nist_damaged")
        raise NistRefused(f"The NIST file is damaged ({exc}).", code) from None
    except Exception as exc:  # noqa: BLE001 - any parser failure is the file's fault, never a server error
        raise NistRefused(
            f"The NIST file is damaged and cannot be read ({type(exc).__name__}).", "nist_damaged"
        ) from None

    tcn = _text(message[0], 9)
    descriptive = next(message.iter(2), None)
    if descriptive is None:
        raise NistRefused("The file has no Type-2 (descriptive text) record: no subject to enrol.", "nist_no_subject")
    sid = _text(descriptive, 15)
    if not sid and not tcn:
        raise NistRefused("Neither a SID (2.015) nor a TCN (1.009) names the subject.", "nist_no_subject")
    reference = sid or f"TCN {tcn}"
    display_name = _display_name(_text(descriptive, 18)) or f"Subject {reference}"
    date_of_birth = _date_of_birth(_text(descriptive, 22))

    faces, refused, other_types, ignored = [], [], [], []
    for record in message.iter(10):
        idc = _text(record, 2)
        label = f"{name} record 10.{idc}"
        image_type = _text(record, 3).upper()
        if image_type != "FACE":
            other_types.append(image_type or "none")
            note = f"Image type {image_type or 'none'} (10.003), not FACE: not imported."
            ignored.append({"file": label, "note": note})
            continue
        try:
            image = getattr(record, "_999", b"") or b""
            if not isinstance(image, bytes) or not image:
                raise NistRefused(f"{label}: the face record holds no image (10.999).", "unreadable")
            faces.append(NistFace(idc=int(idc or 0), data=_face_image(image, label), compression=_text(record, 11)))
        except NistRefused as exc:
            refused.append({"file": label, "reason": str(exc), "code": exc.code})
    if not faces:
        if refused:
            raise NistRefused(" ".join(item["reason"] for item in refused), "unreadable")
        if other_types:
            raise NistRefused(
                f"No face record: the Type-10 images are of type {', '.join(sorted(set(other_types)))}, not FACE.",
                "nist_not_face",
            )
        raise NistRefused("The file has no Type-10 face record.", "nist_no_face")
    return NistSubject(
        name=name,
        tcn=tcn,
        sid=sid,
        display_name=display_name,
        date_of_birth=date_of_birth,
        faces=faces,
        refused=refused,
        ignored=ignored,
    )


def _subject_store(*, gallery: Gallery, subject: NistSubject, summary: EnrolmentSummary, enrolled_by) -> None:
    """Analyse the subject's faces, then store them in one transaction; a face the gate, a tombstone or the
    minors rule refuses is listed, the others kept. Nothing of the subject survives an unexpected failure."""
    analysed = []
    for face in subject.faces:
        label = f"{subject.name} record 10.{face.idc}"
        try:
            analysed.append((face, label, enrolment_analyse(face.data, gallery.engine)))
        except EnrolmentSkipped as exc:
            summary.skipped.append({"file": label, "reason": str(exc), "code": exc.code})
    if not analysed:
        return
    stored = []
    try:
        with transaction.atomic():
            # The same subject imported again adds to the same profile: found by its SID (or TCN), never its name.
            profile = Profile.objects.filter(gallery=gallery, record_reference=subject.record_reference).first()
            if profile is None:
                profile = Profile.objects.create(
                    gallery=gallery,
                    display_name=subject.display_name[:200],
                    date_of_birth=subject.date_of_birth,
                    record_reference=subject.record_reference,
                )
            elif profile.date_of_birth is None and subject.date_of_birth:
                profile.date_of_birth = subject.date_of_birth
                profile.save(update_fields=["date_of_birth"])
            for face, label, photo in analysed:
                try:
                    result = face_image_store(
                        profile=profile,
                        analysed=photo,
                        source_name=f"{os.path.basename(subject.name)} record 10.{face.idc}"[:255],
                        enrolled_by=enrolled_by,
                    )
                except EnrolmentSkipped as exc:
                    summary.skipped.append({"file": label, "reason": str(exc), "code": exc.code})
                    continue
                stored.append(result.face_image)
                summary.notes += [{"file": label, "note": note} for note in result.notes]
            if not stored and not profile.face_images.exists():
                profile.delete()  # nothing enrolled: no empty record
    except Exception:
        media_delete(*[name for image in stored for name in (image.image.name, image.crop.name)])
        raise
    if stored:
        summary.faces_enrolled += len(stored)
        summary.profiles.add(profile.id)


def nist_files_import(
    *,
    gallery: Gallery,
    gallery_created: bool,
    files: list[tuple[str, bytes]],
    enrolled_by: User | None = None,
    progress=None,
    ip_address: str | None = None,
) -> EnrolmentSummary:
    """Import ANSI/NIST-ITL files (name, bytes) into the gallery: each file one subject, stored whole or not
    at all; every refused file or record is in `skipped` with its reason. `progress(name)` after each file.

    A new gallery (gallery_created) that receives nothing is not kept: the summary's gallery_id is then None.
    """
    summary = EnrolmentSummary(gallery=gallery, gallery_created=gallery_created)
    try:
        for name, data in files:
            try:
                subject = nist_subject_read(data, name)
            except NistRefused as exc:
                summary.skipped.append({"file": name, "reason": str(exc), "code": exc.code})
            else:
                summary.skipped += subject.refused
                summary.notes += subject.ignored
                _subject_store(gallery=gallery, subject=subject, summary=summary, enrolled_by=enrolled_by)
            if progress is not None:
                progress(name)
    except MediaUnavailable as exc:
        # The store went away: each subject was stored whole or not at all; what was stored is recorded below,
        # then the import stops with the reason.
        stopped = exc
    else:
        stopped = None
    if stopped is not None and not summary.faces_enrolled:
        if gallery_created:
            gallery.delete()
        raise stopped
    kept = bool(summary.faces_enrolled or not gallery_created)
    audit_record(
        action=AuditEntry.Action.GALLERY_ENROLLED,
        actor=enrolled_by,
        agency=gallery.owner,
        target=gallery if kept else None,
        ip_address=ip_address,
        detail=f"{summary.faces_enrolled} faces imported from {len(files)} ANSI/NIST-ITL file(s) into "
        f"{gallery.name}, {len(summary.skipped)} skipped"
        + ("" if kept else " (the new gallery was not kept)")
        + (f"; stopped: {stopped}" if stopped else ""),
        data={
            "format": "ANSI/NIST-ITL",
            "files": len(files),
            "gallery_created": gallery_created and kept,
            "profiles": len(summary.profiles),
            "faces_enrolled": summary.faces_enrolled,
            "skipped": len(summary.skipped),
        },
    )
    if not kept:
        gallery.delete()  # a new gallery that received nothing is not left behind empty
    if stopped is not None:
        raise stopped
    return summary


def gallery_nist_upload(
    *,
    enrolled_by: User,
    gallery: Gallery | None,
    uploads: list,
    new_name: str = "",
    legal_basis: str = "",
    legal_basis_reference: str = "",
    source_type: str = "",
    responsible_person: str = "",
    retention_days: int | None = None,
    ip_address: str | None = None,
) -> EnrolmentSummary:
    """The galleries page's import of uploaded NIST files into a gallery of the user's agency (a new one when
    `gallery` is None, from its name and provenance); GalleryRefused when there is no gallery to import into."""
    if gallery is not None and gallery.owner_id != enrolled_by.agency_id:
        raise GalleryRefused("Choose one of your agency's galleries.", "gallery")
    if gallery is None and not new_name.strip():
        raise GalleryRefused("Name the new gallery.", "new_name")
    try:
        gallery, created = (
            (gallery, False)
            if gallery
            else gallery_get_or_create(
                owner=enrolled_by.agency,
                name=new_name.strip(),
                legal_basis=legal_basis,
                legal_basis_reference=legal_basis_reference,
                source_type=source_type,
                responsible_person=responsible_person,
                retention_days=retention_days,
            )
        )
    except EnrolmentSkipped as exc:
        raise GalleryRefused(str(exc), "gallery") from None
    files, too_large = [], []
    for upload in uploads:
        if upload.size > NIST_MAX_BYTES:  # refused before the file is read into memory
            too_large.append(upload.name)
            continue
        files.append((upload.name, upload.read()))
    summary = nist_files_import(
        gallery=gallery, gallery_created=created, files=files, enrolled_by=enrolled_by, ip_address=ip_address
    )
    limit = f"{NIST_MAX_BYTES / 2**20:.1f} MB"
    summary.skipped[:0] = [
        {"file": name, "reason": f"The file is too large; the limit is {limit}.", "code": "too_large"}
        for name in too_large
    ]
    return summary
