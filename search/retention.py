"""Retention: probe photos (with their prepared copies and crops) and recorded videos (with their stills) a set
time after their case is closed, gallery faces when their gallery's retention period ends (unless on legal
hold). Run daily by Celery beat and by `manage.py purge_expired`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import DurationField, ExpressionWrapper, F, Q
from django.utils import timezone

from portal.audit import audit_record
from portal.models import AuditEntry, Case
from search.models import Candidate, FaceImage, Probe, ProbeFace, ProbeVideo, Profile, SearchJob
from search.storage import media_available_check, media_delete_on_commit
from search.subject_requests import candidates_erased


@dataclass
class PurgePlan:
    probes: list[Probe] = field(default_factory=list)
    face_images: list[FaceImage] = field(default_factory=list)
    videos: list[ProbeVideo] = field(default_factory=list)

    def files(self) -> list[str]:
        names = [n for p in self.probes for n in (p.image.name, p.prepared_image.name) if n]
        names += [f.crop.name for f in ProbeFace.objects.filter(probe__in=self.probes) if f.crop]
        names += [n for f in self.face_images for n in (f.image.name, f.crop.name) if n]
        names += [v.file.name for v in self.videos if v.file]
        names += [still["image"] for v in self.videos for still in v.stills if still.get("image")]
        return names

    def __bool__(self) -> bool:
        return bool(self.probes or self.face_images or self.videos)


def purge_plan(*, now=None) -> PurgePlan:
    """What has expired; probes whose search still runs, and videos still being read, wait for the next purge."""
    now = now or timezone.now()
    closed_before = now - timedelta(days=settings.PROBE_RETENTION_DAYS)
    expired_case = Q(case__status=Case.Status.CLOSED, case__closed_at__lt=closed_before, purged_at__isnull=True)
    busy = SearchJob.objects.filter(status__in=[SearchJob.Status.QUEUED, SearchJob.Status.RUNNING])
    probes = Probe.objects.filter(expired_case).exclude(jobs__in=busy).select_related("case").distinct()
    videos = (
        ProbeVideo.objects.filter(expired_case)
        .exclude(status__in=[ProbeVideo.Status.QUEUED, ProbeVideo.Status.RUNNING])
        # A video refused on arrival kept no file: nothing of it to purge.
        .exclude(file="", stills=[])
        .select_related("case")
    )
    face_images = (
        FaceImage.objects.filter(gallery__retention_days__isnull=False, gallery__legal_hold=False)
        .annotate(kept_for=ExpressionWrapper(now - F("created_at"), output_field=DurationField()))
        .filter(
            kept_for__gt=ExpressionWrapper(
                F("gallery__retention_days") * timedelta(days=1), output_field=DurationField()
            )
        )
        .select_related("gallery", "profile")
    )
    return PurgePlan(probes=list(probes), face_images=list(face_images), videos=list(videos))


def purge_expired(*, dry_run: bool = False, now=None) -> PurgePlan:
    plan = purge_plan(now=now)
    if dry_run or not plan:
        return plan
    files = plan.files()
    media_available_check()  # an outage postpones the purge; it never leaves files without their records
    with transaction.atomic():
        probe_ids = [p.id for p in plan.probes]
        Probe.objects.filter(id__in=probe_ids).update(image="", prepared_image="", purged_at=timezone.now())
        ProbeFace.objects.filter(probe_id__in=probe_ids).update(crop="")
        # The row stays with the video's hash and size, as the searches of its stills keep its hash and times.
        video_ids = [v.id for v in plan.videos]
        ProbeVideo.objects.filter(id__in=video_ids).update(file="", stills=[], purged_at=timezone.now())
        face_ids = [f.id for f in plan.face_images]
        candidates_erased(
            Candidate.objects.filter(face_image_id__in=face_ids),
            reason="removed when its gallery's retention period ended",
            erased_at=timezone.now(),
        )
        profile_ids = {f.profile_id for f in plan.face_images}
        FaceImage.objects.filter(id__in=face_ids).delete()
        Profile.objects.filter(id__in=profile_ids, face_images__isnull=True).delete()
        audit_record(
            action=AuditEntry.Action.RETENTION_PURGE,
            detail=(
                f"{len(probe_ids)} probe photos, {len(video_ids)} videos, {len(face_ids)} gallery faces, "
                f"{len(files)} files"
            ),
            data={"probe_ids": probe_ids, "video_ids": video_ids, "face_image_ids": face_ids},
        )
        media_delete_on_commit(*files)
    return plan
