"""Data-subject requests: the public page where a person files one, and the privacy officer's queue."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from accounts.services import rate_limited, security_event_record
from portal.access import privacy_officer_required, private
from portal.client_address import client_address
from portal.models import AuditEntry
from search import selectors
from search.imaging import PhotoRejected, photo_size_check
from search.models import SubjectRequest
from search.subject_requests import (
    AccessOutcome,
    RequestRefused,
    match_decision_words,
    match_is_likely,
    subject_request_complete,
    subject_request_file,
    subject_request_search,
)


class SubjectRequestForm(forms.Form):
    kind = forms.ChoiceField(
        choices=SubjectRequest.Kind.choices, widget=forms.RadioSelect, label="I ask to", initial="access"
    )
    photo = forms.FileField(
        label="A photo of your face",
        help_text="JPEG, PNG or WebP; your face alone, clearly. It is used only to find what is held about you.",
        widget=forms.ClearableFileInput(attrs={"accept": "image/jpeg,image/png,image/webp"}),
    )
    contact = forms.EmailField(label="Your e-mail address", help_text="Where we answer")

    def clean_photo(self):
        # The field keeps the last of several files silently; a person must know which photo was used.
        if len(self.files.getlist(self.add_prefix("photo"))) > 1:
            raise forms.ValidationError("Send one photo only: the one that shows your face most clearly.")
        photo = self.cleaned_data["photo"]
        try:
            photo_size_check(photo.size)
        except PhotoRejected as exc:
            raise forms.ValidationError(str(exc)) from None
        return photo


@require_http_methods(["GET", "HEAD", "POST"])
def subject_request_new(request):
    """Public: no sign-in. No limit on how often a person asks; a per-address rate limit guards abuse."""
    form = SubjectRequestForm(request.POST or None, request.FILES or None)
    if request.method == "POST":
        ip = client_address(request)
        # Every attempt counts, filed or refused: a refused photo costs a decode and a face detection too.
        if rate_limited(
            ip_address=ip,
            actions=[AuditEntry.Action.SUBJECT_REQUEST_ATTEMPTED],
            per_minute=settings.PUBLIC_REQUESTS_PER_MINUTE,
        ) or rate_limited(
            ip_address=None,
            every_address=True,
            actions=[AuditEntry.Action.SUBJECT_REQUEST_ATTEMPTED],
            per_minute=settings.PUBLIC_REQUESTS_PER_MINUTE_TOTAL,
        ):
            form.add_error(None, "Too many requests from your address. Wait a minute and try again.")
            return render(request, "search/subject_request_new.html", {"form": form}, status=429)
        security_event_record(action=AuditEntry.Action.SUBJECT_REQUEST_ATTEMPTED, ip_address=ip)
        # The form's checks (one file, its size, the address) run before the photo is decoded.
        if form.is_valid():
            upload = form.cleaned_data["photo"]
            try:
                filed = subject_request_file(
                    kind=form.cleaned_data["kind"],
                    contact=form.cleaned_data["contact"],
                    data=upload.read(),
                    ip_address=ip,
                )
            except RequestRefused as exc:
                form.add_error("photo", str(exc))
            else:
                return render(request, "search/subject_request_filed.html", {"subject_request": filed})
        return render(request, "search/subject_request_new.html", {"form": form}, status=400)
    return render(request, "search/subject_request_new.html", {"form": form})


@require_safe
@privacy_officer_required
def request_queue(request):
    return render(
        request,
        "search/privacy_queue.html",
        {
            "requests": selectors.subject_request_queue(),
            "now": timezone.now(),
            "tombstone_hits": selectors.tombstone_hits_recent(),
        },
    )


@require_safe
@privacy_officer_required
def request_detail(request, reference):
    subject_request = selectors.subject_request_get(reference=reference)
    matches = [
        match | {"likely": match_is_likely(match), "decision_words": match_decision_words(match)}
        for match in selectors.subject_request_matches(subject_request=subject_request)
    ]
    return render(
        request,
        "search/privacy_request.html",
        {"subject_request": subject_request, "matches": matches, "now": timezone.now()},
    )


@privacy_officer_required
@require_POST
def request_search(request, reference):
    subject_request = selectors.subject_request_get(reference=reference)
    try:
        matches = subject_request_search(request=subject_request, user=request.user)
    except RequestRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{len(matches)} matching profile(s) across every agency's galleries.")
    return redirect("privacy:request-detail", reference=reference)


@privacy_officer_required
@require_POST
def request_complete(request, reference):
    subject_request = selectors.subject_request_get(reference=reference)
    try:
        profile_ids = [int(value) for value in request.POST.getlist("profile")]
        outcome = subject_request_complete(
            request=subject_request,
            user=request.user,
            profile_ids=profile_ids,
            identity_note=request.POST.get("identity_note", ""),
        )
    except (RequestRefused, ValueError) as exc:
        messages.error(request, str(exc))
    else:
        if isinstance(outcome, AccessOutcome):
            messages.success(request, f"Export of {len(outcome.matches)} profile(s) released.")
        else:
            messages.success(
                request, f"{len(outcome.erased_profiles)} profile(s) erased, {outcome.files_removed} files removed."
            )
    return redirect("privacy:request-detail", reference=reference)


@require_safe
@privacy_officer_required
def request_photo(request, reference):
    subject_request = selectors.subject_request_get(reference=reference)
    if not subject_request.photo:
        raise Http404("The request's photo is no longer held")
    return private(FileResponse(subject_request.photo.open("rb"), content_type="image/jpeg"))


@require_safe
@privacy_officer_required
def request_match_face(request, reference, face_code):
    subject_request = selectors.subject_request_get(reference=reference)
    face = selectors.subject_request_match_face_get(subject_request=subject_request, face_code=face_code)
    return private(FileResponse(face.crop.open("rb"), content_type="image/jpeg"))


@require_safe
@privacy_officer_required
def request_export(request, reference):
    subject_request = selectors.subject_request_get(reference=reference)
    if not subject_request.export:
        raise Http404("No export")
    return private(
        FileResponse(
            subject_request.export.open("rb"),
            content_type="application/zip",
            as_attachment=True,
            filename=f"{reference}.zip",
        )
    )
