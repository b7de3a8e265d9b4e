"""Retention: probe photos a set time after their case is closed, gallery faces when their gallery's
retention period ends (unless on legal hold). Run daily by Celery beat and by `manage.py purge_expired`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import DurationField, ExpressionWrapper, F
from django.utils import timezone

from portal.audit import audit_record
from portal.models import AuditEntry, Case
from search.models import Candidate, FaceImage, Probe, ProbeFace, Profile, SearchJob
from search.storage import media_delete


@dataclass
class PurgePlan:
    probes: list[Probe] = field(default_factory=list)
    face_images: list[FaceImage] = field(default_factory=list)

    def files(self) -> list[str]:
        names = [p.image.name for p in self.probes if p.image]
        names += [f.crop.name for f in ProbeFace.objects.filter(probe__in=self.probes) if f.crop]
        names += [n for f in self.face_images for n in (f.image.name, f.crop.name) if n]
        return names


def purge_plan(*, now=None) -> PurgePlan:
    """What has expired; probes whose search still runs wait for the next purge."""
    now = now or timezone.now()
    closed_before = now - timedelta(days=settings.PROBE_RETENTION_DAYS)
    busy = SearchJob.objects.filter(status__in=[SearchJob.Status.QUEUED, SearchJob.Status.RUNNING])
    probes = (
        Probe.objects.filter(case__status=Case.Status.CLOSED, case__closed_at__lt=closed_before, purged_at__isnull=True)
        .exclude(jobs__in=busy)
        .select_related("case")
        .distinct()
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
    return PurgePlan(probes=list(probes), face_images=list(face_images))


def purge_expired(*, dry_run: bool = False, now=None) -> PurgePlan:
    plan = purge_plan(now=now)
    if dry_run or not (plan.probes or plan.face_images):
        return plan
    files = plan.files()
    with transaction.atomic():
        probe_ids = [p.id for p in plan.probes]
        Probe.objects.filter(id__in=probe_ids).update(image="", purged_at=timezone.now())
        ProbeFace.objects.filter(probe_id__in=probe_ids).update(crop="")
        face_ids = [f.id for f in plan.face_images]
        Candidate.objects.filter(face_image_id__in=face_ids).update(
            erased_at=timezone.now(), erased_reason="removed when its gallery's retention period ended"
        )
        profile_ids = {f.profile_id for f in plan.face_images}
        FaceImage.objects.filter(id__in=face_ids).delete()
        Profile.objects.filter(id__in=profile_ids, face_images__isnull=True).delete()
        audit_record(
            action=AuditEntry.Action.RETENTION_PURGE,
            detail=f"{len(probe_ids)} probe photos, {len(face_ids)} gallery faces, {len(files)} files",
            data={"probe_ids": probe_ids, "face_image_ids": face_ids},
        )
        transaction.on_commit(lambda: media_delete(*files))
    return plan
