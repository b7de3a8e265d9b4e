"""Stills from recorded video: the upload's checks, decoding in a child process under the memory cap, and
proposing the sharpest frames with faces. Only the stills are ever searched (search.services.probe_submit).

    queued ──claim──▶ running ──▶ ready    the proposed stills stored beside the video
                         └──────▶ failed   not a video, too long, no face: the video and every still deleted,
                                           the row keeps the reason, the hash and the size

The web request only checks the size and the container's first bytes; no decoder ever reads a video in the
web process. A worker decodes it in a child process (`_CHILD`) whose address space is capped with RLIMIT_AS
before it loads anything, at the photo decoding cap, and that is killed past a timeout.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from celery import current_task
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnreachable

from accounts.models import User
from portal.audit import audit_record
from portal.models import AuditEntry, Case
from search import publish
from search.jobs import SEARCH_LOWEST_PRIORITY
from search.models import OffenseCategory, ProbeVideo
from search.storage import media_delete, media_store

logger = logging.getLogger(__name__)

# The photo decoding cap (tests/security/test_decoding_memory.py, docs/reliability.md): address space, not
# resident memory; the default engine's OpenCV runtime reserves about 0.7 GB of it when its models load.
DECODE_ADDRESS_SPACE_BYTES = 3 * 1024**3 // 2
# Proposed stills are at least this far apart, so that eight stills are not eight copies of one moment.
STILL_SPACING_MS = 1000
# How much of the file the upload reads to name its container.
HEAD_BYTES = 4096
# A frame count no honest video within VIDEO_MAX_SECONDS reaches (240 frames a second): past it the timing
# the file declares is not believed.
MAX_FRAMES_PER_SECOND = 240

NOT_READABLE = "This file could not be read as a video."
NO_FACE = "No face found in the video."
ACCEPTED = "Choose an MP4 or WebM video."

UNFINISHED = [ProbeVideo.Status.QUEUED, ProbeVideo.Status.RUNNING]


class VideoRejected(ValueError):
    """A video the portal will not take, with a message for the officer."""


# --- Reads, scoped to the user's agency ----------------------------------------------------------


# --- The upload, in the web request ------------------------------------------------------------


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def duration_words(milliseconds: int) -> str:
    """1 second, 3.5 seconds, 4 min 12 s, 5 minutes."""
    if milliseconds < 60_000:
        seconds = f"{milliseconds / 1000:.1f}".removesuffix(".0")
        return f"{seconds} second{'' if seconds == '1' else 's'}"
    minutes, seconds = divmod(round(milliseconds / 1000), 60)
    if seconds:
        return f"{minutes} min {seconds} s"
    return f"{minutes} minute{'' if minutes == 1 else 's'}"


def video_size_check(size: int) -> None:
    """Refuse a video by its size alone, before anything reads it."""
    if size == 0:
        raise VideoRejected("The file is empty.")
    if size > settings.VIDEO_MAX_BYTES:
        raise VideoRejected(
            f"The video is too large ({_megabytes(size)}); the limit is {_megabytes(settings.VIDEO_MAX_BYTES)}. "
            "Cut the part that matters and upload that."
        )


# ISO base media files that hold still images, not video (HEIF/HEIC and AVIF photos).
_IMAGE_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_EBML_DOC_TYPE = 0x4282
_OTHER_FILES = (
    (b"\xff\xd8\xff", "a JPEG photo"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
)


def _ebml_number(data: bytes, position: int, *, keep_marker: bool) -> tuple[int, int]:
    """An EBML variable-length number at position: its value and the position after it."""
    first = data[position]
    length = 1
    while length <= 8 and not first & (0x80 >> (length - 1)):
        length += 1
    if length > 8 or position + length > len(data):
        raise ValueError("not an EBML number")
    value = first if keep_marker else first & (0xFF >> length)
    for byte in data[position + 1 : position + length]:
        value = (value << 8) | byte
    return value, position + length


def _ebml_doc_type(head: bytes) -> str | None:
    """The DocType of an EBML header ("webm", "matroska"), read from the header's own elements."""
    try:
        size, position = _ebml_number(head, len(_EBML_MAGIC), keep_marker=False)
        end = min(position + size, len(head))
        while position < end:
            element, position = _ebml_number(head, position, keep_marker=True)
            length, position = _ebml_number(head, position, keep_marker=False)
            if element == _EBML_DOC_TYPE:
                return head[position : position + length].rstrip(b"\x00").decode("ascii", "replace")
            position += length
    except (IndexError, ValueError):
        return None
    return None


def video_container(head: bytes) -> str:
    """ "mp4" or "webm", named from the file's first bytes only; VideoRejected for anything else."""
    if head[4:8] == b"ftyp":
        if head[8:12] in _IMAGE_BRANDS:
            raise VideoRejected(f"The file is a HEIC or AVIF photo, not a video: search it as a photo. {ACCEPTED}")
        return "mp4"
    if head.startswith(_EBML_MAGIC):
        doc_type = _ebml_doc_type(head)
        if doc_type == "webm":
            return "webm"
        raise VideoRejected(f"Matroska (MKV) files are not accepted. {ACCEPTED}")
    if head[:4] == b"RIFF" and head[8:12] in (b"WEBP", b"AVI "):
        kind = "a WebP image" if head[8:12] == b"WEBP" else "an AVI video, which is not accepted"
        raise VideoRejected(f"The file is {kind}. {ACCEPTED}")
    for signature, kind in _OTHER_FILES:
        if head.startswith(signature):
            raise VideoRejected(f"The file is {kind}, not a video. {ACCEPTED}")
    raise VideoRejected(f"The file is not a video (or not one this portal can read). {ACCEPTED}")


def _sha256(upload) -> str:
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    return digest.hexdigest()


def _media_store_upload(name: str, upload) -> str:
    """Write an uploaded file at that name, streamed from the upload's temporary file in chunks."""
    # storage.media_store takes bytes, which would hold up to VIDEO_MAX_BYTES in memory at once.
    if default_storage.exists(name):
        default_storage.delete(name)
    upload.seek(0)
    return default_storage.save(name, upload)


def video_source_name(video: ProbeVideo) -> str:
    return f"videos/{video.agency.code}/{video.code}/source.{video.container}"


def video_still_name(video: ProbeVideo, time_ms: int) -> str:
    return f"videos/{video.agency.code}/{video.code}/still-{time_ms}.jpg"


def video_upload(
    *,
    case: Case,
    uploaded_by: User,
    upload,
    category: OffenseCategory,
    justification: str,
    sensitive: bool = False,
    ip_address: str | None = None,
) -> ProbeVideo:
    """Check and store an uploaded video (a Django UploadedFile) and queue the search for its stills;
    VideoRejected otherwise. The purpose was checked by the caller (search.services.search_purpose_check)."""
    if uploaded_by.agency_id is None or case.agency_id != uploaded_by.agency_id:
        raise VideoRejected("You can only add a video to a case of your own agency.")
    if case.status != Case.Status.OPEN:
        raise VideoRejected(f"Case {case.number} is closed; reopen it to search.")
    video_size_check(upload.size)
    upload.seek(0)
    container = video_container(upload.read(HEAD_BYTES))
    video = ProbeVideo(
        agency_id=case.agency_id,
        case=case,
        uploaded_by=uploaded_by,
        original_name=(upload.name or "")[:255],
        content_hash=_sha256(upload),
        size_bytes=upload.size,
        container=container,
        offense_category=category,
        justification=justification,
        sensitive=sensitive,
    )
    video.file = _media_store_upload(video_source_name(video), upload)
    try:
        with transaction.atomic():
            video.save()
            audit_record(
                action=AuditEntry.Action.VIDEO_UPLOADED,
                actor=uploaded_by,
                case=case,
                target=video,
                ip_address=ip_address,
                detail=f"{category.name}: {justification}",
                data={
                    "video": str(video.code),
                    "video_hash": video.content_hash,
                    "size_bytes": video.size_bytes,
                    "container": container,
                    "purpose": category.name,
                    "justification": justification,
                },
            )
            video_id = video.id
            # Published only after commit, or the worker may look for a row it cannot see yet.
            transaction.on_commit(lambda: _video_publish(video_id))
    except Exception:
        media_delete(video.file.name)
        raise
    return video


def _video_publish(video_id: int) -> None:
    try:
        # A video holds a worker for up to a minute or more: behind the searches of agencies with nothing waiting.
        publish.video_stills_find.apply_async((video_id,), priority=SEARCH_LOWEST_PRIORITY)
    except BrokerUnreachable as exc:
        # No sweeper republishes videos: say so now instead of leaving it queued for ever.
        logger.warning("Video %s could not be queued: %s", video_id, exc, extra={"video_id": video_id})
        video_fail(video_id=video_id, reason="No worker could be reached to read the video: upload it again.")


# --- Finding the stills, in a worker ------------------------------------------------------------


def video_stills_find(*, video_id: int) -> None:
    """Decode a video in a capped child process and propose its stills, or fail it with the reason.

    Safe to run twice: a finished video is left alone; of two runs at once, the first to finish is recorded.
    """
    # A running video is claimed again: its message comes back only when the worker that ran it was lost.
    if not ProbeVideo.objects.filter(pk=video_id, status__in=UNFINISHED).update(status=ProbeVideo.Status.RUNNING):
        return
    video = ProbeVideo.objects.select_related("agency", "case", "uploaded_by").get(pk=video_id)
    context = {"video_id": video_id, "agency_id": video.agency_id}
    with tempfile.TemporaryDirectory(prefix="video-stills-") as work:
        try:
            outcome = _stills_in_child(video, Path(work))
        except Exception:
            logger.exception("Video %s: finding its stills failed", video_id, extra=context)
            outcome = {"outcome": "unreadable", "detail": "the portal failed"}
        logger.info("Video %s: %s", video_id, {k: v for k, v in outcome.items() if k != "stills"}, extra=context)
        reason = _refusal(outcome)
        if reason:
            video_fail(video_id=video_id, reason=reason)
            return
        stills = []
        for still in outcome["stills"]:
            data = (Path(work) / still["file"]).read_bytes()
            name = media_store(video_still_name(video, still["time_ms"]), data)
            stills.append(
                {"time_ms": still["time_ms"], "image": name, "sharpness": still["sharpness"], "faces": still["faces"]}
            )
    _video_ready(video, outcome, stills)


def _refusal(outcome: dict) -> str:
    """The officer's reason for a video that gave no stills; empty when it did."""
    kind = outcome["outcome"]
    if kind == "stills":
        return "" if outcome["stills"] else NO_FACE
    if kind == "too_long":
        lasts = "lasts" if outcome.get("exact") else "lasts at least"
        return (
            f"The video {lasts} {duration_words(outcome['duration_ms'])}; at most "
            f"{duration_words(settings.VIDEO_MAX_SECONDS * 1000)} can be read. Cut the part that matters and "
            "upload that."
        )
    if kind == "frames_too_large":
        return (
            f"The video's frames are too large ({outcome['width']}×{outcome['height']} pixels); at most "
            f"{settings.UPLOAD_MAX_PIXELS:,} pixels a frame can be read."
        )
    if kind == "timeout":
        return f"{NOT_READABLE} Reading it took longer than {outcome['seconds']} seconds."
    return NOT_READABLE


def _video_ready(video: ProbeVideo, outcome: dict, stills: list[dict]) -> None:
    with transaction.atomic():
        recorded = ProbeVideo.objects.filter(pk=video.pk, status=ProbeVideo.Status.RUNNING).update(
            status=ProbeVideo.Status.READY,
            stills=stills,
            duration_ms=outcome["duration_ms"],
            width=outcome["width"],
            height=outcome["height"],
            error="",
            finished_at=timezone.now(),
        )
        if recorded:
            audit_record(
                action=AuditEntry.Action.VIDEO_STILLS_FOUND,
                actor=video.uploaded_by,
                case=video.case,
                target=video,
                detail=f"{len(stills)} stills proposed from a video of {duration_words(outcome['duration_ms'])}",
                data={
                    "video": str(video.code),
                    "video_hash": video.content_hash,
                    "duration_ms": outcome["duration_ms"],
                    "stills_ms": [still["time_ms"] for still in stills],
                },
            )
    if not recorded:
        # Another run finished first: its outcome stands; keep only the files it refers to.
        current = ProbeVideo.objects.get(pk=video.pk)
        kept = {still["image"] for still in current.stills}
        media_delete(*(still["image"] for still in stills if still["image"] not in kept))


def video_fail(*, video_id: int, reason: str) -> bool:
    """Fail an unfinished video with the reason and delete the video and its stills: nothing of it is kept but
    the reason, its hash and its size. False when it was already finished."""
    with transaction.atomic():
        video = (
            ProbeVideo.objects.select_for_update(of=("self",))
            .select_related("agency", "case", "uploaded_by")
            .filter(pk=video_id, status__in=UNFINISHED)
            .first()
        )
        if video is None:
            return False
        # The stills this video might have: a run that stored some before failing recorded none.
        names = [video.file.name, *(still["image"] for still in video.stills)]
        folder = f"videos/{video.agency.code}/{video.code}"
        try:
            names += [f"{folder}/{name}" for name in default_storage.listdir(folder)[1]]
        except FileNotFoundError:
            pass
        ProbeVideo.objects.filter(pk=video_id).update(
            status=ProbeVideo.Status.FAILED,
            error=reason,
            file="",
            stills=[],
            duration_ms=None,
            width=None,
            height=None,
            finished_at=timezone.now(),
        )
        audit_record(
            action=AuditEntry.Action.VIDEO_REJECTED,
            actor=video.uploaded_by,
            case=video.case,
            target=video,
            detail=reason,
            data={"video": str(video.code), "video_hash": video.content_hash, "size_bytes": video.size_bytes},
        )
        transaction.on_commit(lambda: media_delete(*names))
    return True


# --- The child process ---------------------------------------------------------------------------

# Run as `python -c _CHILD CAP SETTINGS JOB`: the cap is set before anything is imported, then Django is set
# up with the portal's settings and the parent's figures over them (a test's overrides included).
_CHILD = """
import json, os, resource, sys
cap = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
import django
from django.conf import settings
django.setup()
for name, value in json.loads(sys.argv[2]).items():
    setattr(settings, name, value)
from search.video import stills_decode
stills_decode(json.loads(sys.argv[3]))
"""
# What the decoding and the face detection read from the settings.
_CHILD_SETTINGS = (
    "FACE_ENGINE",
    "FACE_DETECT_MAX_SIDE",
    "FACE_DETECT_UPSAMPLE",
    "FACE_MATCH_THRESHOLD",
    "SFACE_MATCH_THRESHOLD",
    "YUNET_SCORE_THRESHOLD",
    "QUALITY_MIN_EYE_DISTANCE_PX",
    "SFACE_QUALITY_MIN_SHARPNESS",
    "DLIB_QUALITY_MIN_SHARPNESS",
    "UPLOAD_MAX_PIXELS",
)


def decode_timeout_seconds() -> int:
    """How long the child may read: inside the running task's soft time limit (its own, else the worker's),
    with time left to store the stills or record the failure."""
    task = current_task
    limit = None
    if task and not task.request.called_directly:
        limit = (task.request.timelimit or (None, None))[1] or task.soft_time_limit
    return max(int(limit or settings.CELERY_TASK_SOFT_TIME_LIMIT) - 15, 5)


def _stills_in_child(video: ProbeVideo, work: Path) -> dict:
    """Run the child on the stored video; its outcome (result.json), or unreadable / timeout."""
    source = _local_copy(video.file.name, work)
    job = {
        "source": str(source),
        "work": str(work),
        "max_ms": settings.VIDEO_MAX_SECONDS * 1000,
        "samples_per_second": settings.VIDEO_SAMPLES_PER_SECOND,
        "proposed": settings.VIDEO_STILLS_PROPOSED,
        "sensitive": video.sensitive,
    }
    limits = {name: getattr(settings, name) for name in _CHILD_SETTINGS}
    timeout = decode_timeout_seconds()
    # One thread for the numeric libraries: each thread's reserved stack and heap arena count against the cap.
    env = os.environ | {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
    started = time.monotonic()
    with (work / "child.log").open("w+") as log:
        try:
            child = subprocess.run(
                [sys.executable, "-c", _CHILD, str(DECODE_ADDRESS_SPACE_BYTES), json.dumps(limits), json.dumps(job)],
                cwd=settings.BASE_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return {"outcome": "timeout", "seconds": timeout}
        result = work / "result.json"
        if child.returncode != 0 or not result.exists():
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 2000))
            logger.warning(
                "Video %s: the decoding child ended with %s: %s",
                video.id,
                child.returncode,
                log.read(),
                extra={"video_id": video.id},
            )
            return {"outcome": "unreadable", "returncode": child.returncode}
    outcome = json.loads(result.read_text())
    outcome["parent_seconds"] = round(time.monotonic() - started, 1)
    return outcome


def _local_copy(name: str, work: Path) -> Path:
    """A path the decoder can open: the stored file itself, or a copy where the storage has no paths."""
    try:
        return Path(default_storage.path(name))
    except NotImplementedError:
        target = work / Path(name).name
        with default_storage.open(name, "rb") as stored, target.open("wb") as copy:
            shutil.copyfileobj(stored, copy, 1024 * 1024)
        return target


def _face_rank(face) -> tuple[bool, float]:
    # Usable faces first (above the quality floors), then the sharper and larger.
    return bool(face.quality["usable"]), face.quality["sharpness"] * face.quality["face_width_px"]


def _peak_memory() -> dict:
    peak_vm = next(
        (
            int(line.split()[1]) // 1024
            for line in Path("/proc/self/status").read_text().splitlines()
            if line.startswith("VmPeak:")
        ),
        -1,
    )
    return {
        "peak_vm_mb": peak_vm,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "address_space_limit": resource.getrlimit(resource.RLIMIT_AS)[0],
    }


def stills_decode(job: dict) -> None:
    """In the child: read the video, sample it, find faces and write the best frames and result.json into
    job["work"]."""
    started = time.monotonic()
    outcome = _stills_decode(job)
    outcome |= {"seconds": round(time.monotonic() - started, 1)} | _peak_memory()
    (Path(job["work"]) / "result.json").write_text(json.dumps(outcome))


def _stills_decode(job: dict) -> dict:
    # Imported here: only the child ever loads a video decoder.
    import cv2
    from PIL import Image

    from search.faces import get_engine
    from search.imaging import encode_jpeg
    from search.photo_faces import PhotoFaces

    capture = cv2.VideoCapture(job["source"], cv2.CAP_FFMPEG)
    if not capture.isOpened():
        return {"outcome": "unreadable"}
    fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
    declared_frames = capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    header = {"width": width, "height": height, "fps": round(fps, 3)}
    if width * height > settings.UPLOAD_MAX_PIXELS:
        return {"outcome": "frames_too_large"} | header
    max_ms = job["max_ms"]
    if fps > 0 and declared_frames > 0 and declared_frames / fps * 1000 > max_ms:
        return {"outcome": "too_long", "exact": True, "duration_ms": round(declared_frames / fps * 1000)} | header

    engine = get_engine(settings.FACE_ENGINE)
    detect_scale = settings.FACE_DETECT_MAX_SIDE / max(width, height, 1)
    detect_size = (round(width * detect_scale) or 1, round(height * detect_scale) or 1) if detect_scale < 1 else None
    interval_ms = 1000 / job["samples_per_second"]
    proposed = job["proposed"]
    # Enough of the best frames to choose `proposed` of them at least STILL_SPACING_MS apart: each chosen
    # frame rules out at most the samples within the spacing on either side.
    kept_at_most = proposed * (2 * math.ceil(STILL_SPACING_MS / interval_ms) + 2)
    kept: list[tuple] = []  # a min-heap of (rank, time_ms, jpeg, sharpness, faces)
    max_frames = job["max_ms"] / 1000 * MAX_FRAMES_PER_SECOND
    frames = samples = with_faces = 0
    time_ms = last_ms = 0.0
    next_sample_ms = 0.0
    timings = {"decode": 0.0, "faces": 0.0, "encode": 0.0}
    clock = time.perf_counter()
    while capture.grab():
        frames += 1
        position = capture.get(cv2.CAP_PROP_POS_MSEC)
        # The frame's own time stamp, or its place at the declared rate where the file gives none.
        time_ms = position if position > last_ms or frames == 1 else last_ms + (1000 / fps if fps > 0 else 40)
        last_ms = time_ms
        if time_ms > max_ms:
            return {"outcome": "too_long", "exact": False, "duration_ms": round(time_ms)} | header
        if frames > max_frames:
            return {"outcome": "unreadable", "detail": "more frames than its duration can hold"} | header
        if time_ms + 0.5 < next_sample_ms:
            continue
        next_sample_ms = (math.floor(time_ms / interval_ms) + 1) * interval_ms
        ok, bgr = capture.retrieve()
        if not ok or bgr is None:
            continue
        samples += 1
        timings["decode"] += time.perf_counter() - clock
        clock = time.perf_counter()
        # Scaled down as a search scales a photo (FACE_DETECT_MAX_SIDE), by OpenCV: Pillow's filter on every
        # sample took longer than the detection.
        small = cv2.resize(bgr, detect_size, interpolation=cv2.INTER_AREA) if detect_size else bgr
        rgb = Image.fromarray(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))
        faces = PhotoFaces(rgb, engine).find(sensitive=job["sensitive"])
        timings["faces"] += time.perf_counter() - clock
        clock = time.perf_counter()
        if not faces:
            continue
        with_faces += 1
        best = max(faces, key=_face_rank)
        entry = (_face_rank(best), round(time_ms), best.quality["sharpness"], len(faces))
        if len(kept) < kept_at_most or entry > kept[0][:4]:
            # Only frames among the best so far are encoded (at full size, as the still to search).
            still = (*entry, encode_jpeg(Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))))
            (heapq.heappush if len(kept) < kept_at_most else heapq.heapreplace)(kept, still)
            timings["encode"] += time.perf_counter() - clock
            clock = time.perf_counter()
    capture.release()
    if frames == 0:
        return {"outcome": "unreadable"} | header
    duration_ms = round(time_ms + (1000 / fps if fps > 0 else 0))
    if duration_ms > max_ms:
        return {"outcome": "too_long", "exact": True, "duration_ms": duration_ms} | header

    chosen: list[tuple] = []
    for entry in sorted(kept, key=lambda e: (e[0], -e[1]), reverse=True):
        if len(chosen) == proposed:
            break
        if all(abs(entry[1] - other[1]) >= STILL_SPACING_MS for other in chosen):
            chosen.append(entry)
    stills = []
    for _rank, still_ms, sharpness_value, face_count, jpeg in chosen:
        name = f"still-{still_ms}.jpg"
        (Path(job["work"]) / name).write_bytes(jpeg)
        stills.append({"time_ms": still_ms, "sharpness": sharpness_value, "faces": face_count, "file": name})
    return {
        "outcome": "stills",
        "duration_ms": duration_ms,
        "frames": frames,
        "samples": samples,
        "samples_with_faces": with_faces,
        "stills": stills,
        "seconds_by_step": {step: round(seconds, 1) for step, seconds in timings.items()},
    } | header
