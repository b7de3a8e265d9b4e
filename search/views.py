"""Probe upload, live search status, results, comparison, profiles, and permission-checked images."""

from __future__ import annotations

import io

from django.conf import settings
from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe
from PIL import Image, ImageDraw, ImageFont

from accounts.middleware import passive
from portal import selectors as case_selectors
from portal.access import agency_member_required, audit_view, image_response, jpeg_response
from portal.client_address import client_address
from portal.models import AuditEntry
from search import selectors
from search.forms import ProbeUploadForm
from search.imaging import PhotoRejected, photo_size_check
from search.models import SearchJob
from search.services import (
    SearchRefused,
    probe_prepare_start,
    probe_submit,
    search_retry_sensitive,
    sensitive_retry_offered,
)

STAGES = [
    SearchJob.Stage.QUEUED,
    SearchJob.Stage.DETECTING,
    SearchJob.Stage.SEARCHING,
    SearchJob.Stage.RENDERING,
    SearchJob.Stage.DONE,
]


@agency_member_required
@require_POST
def probe_upload(request, case_code):
    case = case_selectors.case_get(user=request.user, code=case_code)
    form = ProbeUploadForm(request.POST, request.FILES)
    jobs, problems = [], []
    prepare = request.POST.get("prepare") == "1"
    if form.is_valid():
        stated = {
            "case": case,
            "uploaded_by": request.user,
            "purpose": form.cleaned_data["purpose"].name,
            "justification": form.cleaned_data["justification"],
            "sensitive": form.cleaned_data["sensitive"],
            "ip_address": client_address(request),
        }
        if prepare and len(form.cleaned_data["photos"]) != 1:
            form.add_error("photos", "Prepare one photo at a time: choose a single photo, or search them all now.")
        for upload in form.cleaned_data["photos"] if form.is_valid() else []:
            try:
                photo_size_check(upload.size)  # before the file is read into memory
                if prepare:
                    probe = probe_prepare_start(data=upload.read(), original_name=upload.name, **stated)
                    return _upload_answer(request, reverse("search:probe-prepare", kwargs={"code": probe.code}))
                # The page searches every face of usable quality (commands and the API: every face).
                jobs.append(
                    probe_submit(
                        data=upload.read(), original_name=upload.name, face_choice={"mode": "usable"}, **stated
                    )
                )
            except (PhotoRejected, SearchRefused) as exc:
                problems.append(f"{upload.name}: {exc}")
    if not jobs:
        for problem in problems:
            form.add_error("photos", problem)
        # The case page again, with the form's errors.
        return render(
            request,
            "portal/case_detail.html",
            case_selectors.case_page_context(case=case, upload_form=form),
            status=400,
        )
    for problem in problems:
        messages.error(request, f"Not searched — {problem}")
    if len(jobs) == 1:
        return _upload_answer(request, reverse("search:job-detail", kwargs={"code": jobs[0].code}))
    messages.success(request, f"{len(jobs)} searches started.")
    return _upload_answer(request, reverse("portal:case-detail", kwargs={"code": case.code}))


def _upload_answer(request, next_url: str):
    """A redirect; to the page's own script (portal.js posts the form), the address to go to instead, so that
    the browser loads the next page once rather than the script following a redirect and loading it again."""
    if request.headers.get("X-Upload-Script") == "1":
        return JsonResponse({"next": next_url})
    return redirect(next_url)


def _job_context(job: SearchJob) -> dict:
    done = job.status == SearchJob.Status.DONE
    return {
        "job": job,
        "status_label": _status_label(job),
        "no_face_found": job.found_no_face,
        "retry_sensitive": sensitive_retry_offered(job=job),
        "faces": selectors.job_result_faces(job=job) if done else [],
        "stages": _stage_list(job),
        "expected_false": settings.OPEN_SET_EXPECTED_FALSE,
        "quality_min_eye_px": settings.QUALITY_MIN_EYE_DISTANCE_PX,
    }


def _status_label(job: SearchJob) -> str:
    # A photo without a detectable face is an answer about the photo, not a fault: said calmly, not "Failed".
    if job.found_no_face:
        return "No face found"
    return job.get_status_display() if job.is_finished else f"{job.get_stage_display()}…"


def _stage_list(job: SearchJob) -> list[dict]:
    if job.found_no_face:
        return [{"key": "no-face", "label": "No face found", "state": "stopped"}]
    if job.status == SearchJob.Status.FAILED:
        return [{"key": "failed", "label": "Failed", "state": "failed"}]
    current = STAGES.index(job.stage) if job.stage in STAGES else 0
    return [
        {
            "key": stage.value,
            "label": stage.label,
            "state": "done"
            if i < current or job.status == SearchJob.Status.DONE
            else ("current" if i == current else "todo"),
        }
        for i, stage in enumerate(STAGES)
    ]


@require_safe
@agency_member_required
def job_detail(request, code):
    job = selectors.job_get(user=request.user, code=code)
    if job.status == SearchJob.Status.DONE:
        audit_view(request, AuditEntry.Action.RESULTS_VIEWED, case=job.probe.case, target=job)
    return render(request, "search/job_detail.html", _job_context(job))


@require_safe
@agency_member_required
def job_results(request, code):
    job = selectors.job_get(user=request.user, code=code)
    if job.status == SearchJob.Status.DONE:
        audit_view(request, AuditEntry.Action.RESULTS_VIEWED, case=job.probe.case, target=job)
    return render(request, "search/_results.html", _job_context(job))


@passive  # polling is not activity: an open results page still times out
@require_safe
@agency_member_required
def job_status(request, code):
    job = selectors.job_get(user=request.user, code=code)
    return JsonResponse(
        {
            "status": job.status,
            "stage": job.stage,
            "stage_label": job.get_stage_display(),
            "finished": job.is_finished,
            "error": job.error or None,
            "stage_ms": job.stage_ms,
            "stages": _stage_list(job),
            "status_label": _status_label(job),
            "results_url": reverse("search:job-results", kwargs={"code": job.code}),
        },
        headers={"Cache-Control": "private, no-store"},
    )


@agency_member_required
@require_POST
def job_retry_sensitive(request, code):
    job = selectors.job_get(user=request.user, code=code)
    try:
        retry = search_retry_sensitive(job=job, started_by=request.user, ip_address=client_address(request))
    except SearchRefused as exc:
        messages.error(request, f"Not searched again — {exc}")
        return redirect("search:job-detail", code=job.code)
    messages.success(request, "Searching the same photo again with the sensitive detector.")
    return redirect("search:job-detail", code=retry.code)


@require_safe
@agency_member_required
def profile_detail(request, code):
    profile = selectors.profile_get(user=request.user, code=code)
    audit_view(request, AuditEntry.Action.PROFILE_VIEWED, case=None, target=profile)
    return render(
        request,
        "search/profile_detail.html",
        {
            "profile": profile,
            "face_images": profile.face_images.filter(engine=profile.gallery.engine).order_by("created_at"),
            "appearances": selectors.profile_searches(user=request.user, profile=profile),
        },
    )


# --- Images: only through these views, never from a public media URL --------------------------


@require_safe
@agency_member_required
def probe_image(request, code):
    # The image the search read (the prepared copy, if the probe was prepared): boxes and landmarks refer to it.
    return image_response(selectors.probe_get(user=request.user, code=code).searched_image)


@require_safe
@agency_member_required
def job_annotated_image(request, code):
    """The probe photo with a numbered box on each face found."""
    job = selectors.job_get(user=request.user, code=code)
    if not job.probe.searched_image:
        raise Http404("The probe photo was deleted under the retention rule")
    with job.probe.searched_image.open("rb") as stored:
        image = Image.open(io.BytesIO(stored.read())).convert("RGB")
    scale = min(1.0, 1200 / max(image.size))
    if scale < 1:
        image = image.resize((round(image.width * scale), round(image.height * scale)))
    draw = ImageDraw.Draw(image)
    line = max(2, round(max(image.size) / 300))
    font = ImageFont.load_default(size=max(14, round(max(image.size) / 40)))
    for face in job.probe.faces.order_by("index"):
        x, y, w, h = (round(v * scale) for v in face.box)
        draw.rectangle([x, y, x + w, y + h], outline=(255, 196, 0), width=line)
        label = str(face.index)
        left, top, right, bottom = draw.textbbox((x, y), label, font=font)
        tag = [x, max(0, y - (bottom - top) - 2 * line), x + (right - left) + 4 * line, y]
        draw.rectangle(tag, fill=(255, 196, 0))
        draw.text((tag[0] + 2 * line, tag[1] + line // 2), label, fill=(17, 24, 39), font=font)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=88)
    return jpeg_response(buffer.getvalue())


@require_safe
@agency_member_required
def probe_face_crop(request, code, face):
    return image_response(selectors.probe_face_get(user=request.user, job_code=code, index=face).crop)


@require_safe
@agency_member_required
def face_crop(request, code):
    return image_response(selectors.face_image_get(user=request.user, code=code).crop)


@require_safe
@agency_member_required
def face_photo(request, code):
    return image_response(selectors.face_image_get(user=request.user, code=code).image)
