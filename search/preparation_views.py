"""Probe preparation before a search: choose faces, crop, rotate, adjust; every edit recorded."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from accounts.middleware import passive
from portal.access import agency_member_required, image_response, jpeg_response
from portal.client_address import client_address
from search import preparation, selectors
from search.models import ProbeEdit
from search.services import SearchRefused, probe_sensitive_preview
from search.services import probe_prepared_search as prepared_search_start

EDIT_FIELDS = ("x", "y", "width", "height", "degrees", "brightness", "contrast")


def _prepare_context(probe, *, error: str = "") -> dict:
    ready = probe.preview_hash == preparation.image_version(probe)
    image = probe.searched_image
    width, height = preparation.image_size(probe) if image else (probe.width, probe.height)
    return {
        "probe": probe,
        "case": probe.case,
        "ready": ready,
        "faces": probe.preview_faces if ready else [],
        "edits": list(probe.edits.select_related("made_by").order_by("number")),
        "image_width": width,
        "image_height": height,
        "pending": probe.pending_search,
        "error": error,
        "operations": ProbeEdit.Operation,
    }


def _probe_in_preparation(request, code):
    probe = selectors.probe_get(user=request.user, code=code)
    return probe, probe.jobs.order_by("created_at").first()


@require_safe
@agency_member_required
def probe_prepare(request, code):
    probe, job = _probe_in_preparation(request, code)
    if job is not None:
        # Once searched, the prepared photo is the search's: its page shows it.
        return redirect("search:job-detail", code=job.code)
    return render(request, "search/probe_prepare.html", _prepare_context(probe))


@passive  # polling is not activity
@require_safe
@agency_member_required
def probe_prepare_status(request, code):
    probe, job = _probe_in_preparation(request, code)
    ready = probe.preview_hash == preparation.image_version(probe)
    return JsonResponse(
        {
            "ready": ready,
            "faces": len(probe.preview_faces) if ready else None,
            "searched": job is not None,
            "url": reverse("search:job-detail", kwargs={"code": job.code}) if job else None,
        },
        headers={"Cache-Control": "private, no-store"},
    )


@require_POST
@agency_member_required
def probe_edit(request, code):
    probe, _job = _probe_in_preparation(request, code)
    operation = request.POST.get("operation", "")
    if operation == "sensitive":
        try:
            probe_sensitive_preview(probe=probe, user=request.user)
        except preparation.EditRefused as exc:
            return render(request, "search/probe_prepare.html", _prepare_context(probe, error=str(exc)), status=400)
        messages.success(request, "Looking for faces again with the sensitive detector.")
        return redirect("search:probe-prepare", code=probe.code)
    try:
        edit = preparation.probe_edit_apply(
            probe=probe,
            user=request.user,
            operation=operation,
            values={name: request.POST[name] for name in EDIT_FIELDS if name in request.POST},
            ip_address=client_address(request),
        )
    except preparation.EditRefused as exc:
        return render(request, "search/probe_prepare.html", _prepare_context(probe, error=str(exc)), status=400)
    messages.success(
        request, f"{edit.get_operation_display()} recorded as edit {edit.number}; finding the faces again."
    )
    return redirect("search:probe-prepare", code=probe.code)


@require_POST
@agency_member_required
def probe_prepared_search(request, code):
    probe, _job = _probe_in_preparation(request, code)
    try:
        job = prepared_search_start(
            probe=probe,
            started_by=request.user,
            face_numbers=request.POST.getlist("faces"),
            ip_address=client_address(request),
        )
    except SearchRefused as exc:
        return render(request, "search/probe_prepare.html", _prepare_context(probe, error=str(exc)), status=400)
    return redirect("search:job-detail", code=job.code)


@require_safe
@agency_member_required
def probe_preview_face(request, code, face):
    probe = selectors.probe_get(user=request.user, code=code)
    data = preparation.preview_face_jpeg(probe, face)
    if data is None:
        raise Http404("No such face on the photo as prepared")
    return jpeg_response(data)


@require_safe
@agency_member_required
def probe_original_image(request, code):
    """The photo exactly as stored at upload, before any edit."""
    return image_response(selectors.probe_get(user=request.user, code=code).image)
