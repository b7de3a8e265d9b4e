"""Stills from recorded video: upload into a case, the proposed stills, searching the chosen ones."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.files.storage import default_storage
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST, require_safe

from accounts.middleware import passive
from portal import selectors as case_selectors
from portal.access import agency_member_required, audit_view, private
from portal.client_address import client_address
from portal.models import AuditEntry
from search import selectors
from search import video as videos
from search.forms import ProbeUploadForm
from search.imaging import PhotoRejected
from search.models import ProbeVideo
from search.services import SearchRefused, probe_submit, search_purpose_check, search_use_check


class VideoUploadForm(ProbeUploadForm):
    """The photo form's purpose, justification and detector, with one video instead of photos."""

    prefix = "video"  # beside the photo form on the case page: its own ids and names
    field_order = ["file", "purpose", "sensitive", "justification"]
    photos = None
    file = forms.FileField(
        label="Video file",
        help_text=(
            f"MP4 or WebM, up to {settings.VIDEO_MAX_BYTES // (1024 * 1024)} MB and "
            f"{videos.duration_words(settings.VIDEO_MAX_SECONDS * 1000)}."
        ),
        widget=forms.ClearableFileInput(attrs={"accept": "video/mp4,video/webm"}),
        error_messages={"required": "Choose a video file."},
    )


def still_time(milliseconds: int) -> str:
    """A frame's time as minutes:seconds.milliseconds (01:23.450), as the search page shows it."""
    minutes, rest = divmod(int(milliseconds), 60_000)
    return f"{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def _status_label(video: ProbeVideo) -> str:
    if video.status == ProbeVideo.Status.READY and video.purged_at:
        return "Deleted under retention"
    return f"{video.get_status_display()}…" if video.status in videos.UNFINISHED else video.get_status_display()


def _still_rows(video: ProbeVideo) -> list[dict]:
    return [
        {
            "number": number,
            "time": still_time(still["time_ms"]),
            "faces": still["faces"],
            "sharpness": still["sharpness"],
            "url": reverse("search:video-still-image", kwargs={"code": video.code, "number": number}),
        }
        for number, still in enumerate(video.stills, start=1)
    ]


class _SizeLimit(FileUploadHandler):
    """Skips an uploaded file as soon as it passes VIDEO_MAX_BYTES, so that it is never spooled whole."""

    too_large = False

    def receive_data_chunk(self, raw_data, start):
        if start + len(raw_data) > settings.VIDEO_MAX_BYTES:
            self.too_large = True
            raise SkipFile()
        return raw_data

    def file_complete(self, file_size):
        return None  # the next handler makes the file


@csrf_exempt  # only to put the size limit in place before the body is read: _video_upload checks the token
@agency_member_required
@require_POST
def video_upload(request, case_code):
    limit = _SizeLimit(request)
    request.upload_handlers.insert(0, limit)
    return _video_upload(request, case_code, limit)


@csrf_protect
def _video_upload(request, case_code, limit: _SizeLimit):
    case = case_selectors.case_get(user=request.user, code=case_code)
    if case.status != case.Status.OPEN:
        messages.error(request, f"Not uploaded — case {case.number} is closed; reopen it to search.")
        return redirect("portal:case-detail", code=case.code)
    form = VideoUploadForm(request.POST, request.FILES)
    valid = form.is_valid()
    if limit.too_large:
        form.errors.pop("file", None)
        form.add_error(
            "file", f"The video is larger than the limit of {settings.VIDEO_MAX_BYTES / (1024 * 1024):.1f} MB."
        )
    elif valid:
        try:
            category, justification = search_purpose_check(
                purpose=form.cleaned_data["purpose"].name, justification=form.cleaned_data["justification"]
            )
            # Stills are searched later, each under the same rules; a video the case may not search is not kept.
            search_use_check(case=case, user=request.user, category=category, ip_address=client_address(request))
            video = videos.video_upload(
                case=case,
                uploaded_by=request.user,
                upload=form.cleaned_data["file"],
                category=category,
                justification=justification,
                sensitive=form.cleaned_data["sensitive"],
                ip_address=client_address(request),
            )
        except (videos.VideoRejected, SearchRefused) as exc:
            form.add_error("file", str(exc))
        else:
            return redirect("search:video-detail", code=video.code)
    # The case page again, with the video form's errors.
    context = case_selectors.case_page_context(case=case, upload_form=ProbeUploadForm()) | {"video_form": form}
    return render(request, "portal/case_detail.html", context, status=400)


@require_safe
@agency_member_required
def video_detail(request, code):
    video = selectors.video_get(user=request.user, code=code)
    if video.stills and not video.purged_at:
        # The stills show faces of the case: looking at them is audited like looking at results.
        audit_view(request, AuditEntry.Action.VIDEO_VIEWED, case=video.case, target=video)
    return render(
        request,
        "search/video_detail.html",
        {
            "video": video,
            "status_label": _status_label(video),
            "finished": video.status not in videos.UNFINISHED,
            "stills": _still_rows(video) if not video.purged_at else [],
            "duration": videos.duration_words(video.duration_ms) if video.duration_ms else "",
            "size_mb": f"{video.size_bytes / (1024 * 1024):.1f}",
            "case_open": video.case.status == video.case.Status.OPEN,
            "samples_per_second": settings.VIDEO_SAMPLES_PER_SECOND,
        },
    )


@passive  # polling is not activity: an open page still times out
@require_safe
@agency_member_required
def video_status(request, code):
    video = selectors.video_get(user=request.user, code=code)
    return JsonResponse(
        {
            "status": video.status,
            "status_label": _status_label(video),
            "finished": video.status not in videos.UNFINISHED,
            "error": video.error or None,
            "stills": len(video.stills),
        },
        headers={"Cache-Control": "private, no-store"},
    )


@agency_member_required
@require_POST
def video_search(request, code):
    video = selectors.video_get(user=request.user, code=code)
    if video.status != ProbeVideo.Status.READY or video.purged_at:
        messages.error(request, "Not searched — this video has no stills to search.")
        return redirect("search:video-detail", code=video.code)
    chosen = sorted({int(n) for n in request.POST.getlist("still") if n.isdigit() and 1 <= int(n) <= len(video.stills)})
    if not chosen:
        messages.error(request, "Not searched — choose at least one still.")
        return redirect("search:video-detail", code=video.code)
    jobs, problems = [], []
    for number in chosen:
        still = video.stills[number - 1]
        name = f"{video.original_name or 'Video'} at {still_time(still['time_ms'])}"
        try:
            with default_storage.open(still["image"], "rb") as stored:
                data = stored.read()
            jobs.append(
                probe_submit(
                    case=video.case,
                    uploaded_by=request.user,
                    data=data,
                    original_name=name,
                    purpose=video.offense_category.name if video.offense_category else "",
                    justification=video.justification,
                    sensitive=video.sensitive,
                    ip_address=client_address(request),
                    face_choice={"mode": "usable"},
                    video=video,
                    frame_time_ms=still["time_ms"],
                )
            )
        except (PhotoRejected, SearchRefused, FileNotFoundError) as exc:
            problems.append(f"{name}: {exc}")
    for problem in problems:
        messages.error(request, f"Not searched — {problem}")
    if not jobs:
        return redirect("search:video-detail", code=video.code)
    if len(jobs) == 1:
        return redirect("search:job-detail", code=jobs[0].code)
    messages.success(request, f"{len(jobs)} searches started from stills of {video.original_name or 'the video'}.")
    return redirect("portal:case-detail", code=video.case.code)


@require_safe
@agency_member_required
def video_still_image(request, code, number):
    video = selectors.video_get(user=request.user, code=code)
    if video.purged_at or not 1 <= number <= len(video.stills):
        raise Http404("No such still")
    try:
        handle = default_storage.open(video.stills[number - 1]["image"], "rb")
    except FileNotFoundError:
        raise Http404("Still missing") from None
    response = FileResponse(handle, content_type="image/jpeg")
    response["Content-Disposition"] = "inline"
    return private(response)
