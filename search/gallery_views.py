"""The agency admin's galleries page: provenance, and enrolment of photos with a progress display."""

from __future__ import annotations

from django import forms
from django.db.models import Count
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST, require_safe

from portal.access import agency_admin_required
from portal.client_address import client_address
from search.enrolment import GalleryRefused, gallery_photos_enrol
from search.forms import MultiplePhotoField
from search.models import Gallery


class EnrolmentForm(forms.Form):
    gallery = forms.ModelChoiceField(
        queryset=Gallery.objects.none(), required=False, empty_label="A new gallery…", label="Gallery"
    )
    new_name = forms.CharField(required=False, label="New gallery: name")
    source_type = forms.ChoiceField(
        required=False, choices=[("", "—"), *Gallery.SourceType.choices], label="New gallery: source"
    )
    legal_basis = forms.CharField(required=False, label="New gallery: legal basis")
    legal_basis_reference = forms.CharField(required=False, label="New gallery: act or agreement")
    responsible_person = forms.CharField(required=False, label="New gallery: responsible person")
    retention_days = forms.IntegerField(required=False, min_value=1, label="New gallery: retention (days)")
    display_name = forms.CharField(max_length=200, label="Person's name (profile)")
    date_of_birth = forms.DateField(
        required=False, label="Date of birth", widget=forms.DateInput(attrs={"type": "date"})
    )
    record_reference = forms.CharField(required=False, label="Record reference")
    photos = MultiplePhotoField(label="Photos of this person")

    def __init__(self, *args, agency=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["gallery"].queryset = Gallery.objects.filter(owner=agency)


@require_safe
@agency_admin_required
def gallery_list(request):
    agency = request.user.agency
    return render(
        request,
        "search/galleries.html",
        {
            "galleries": Gallery.objects.filter(owner=agency).annotate(faces=Count("face_images")),
            "form": EnrolmentForm(agency=agency),
        },
    )


@agency_admin_required
@require_POST
def gallery_enrol(request):
    """Enrol the posted photos; the page's script posts them one at a time to show progress."""
    agency = request.user.agency
    form = EnrolmentForm(request.POST, request.FILES, agency=agency)
    if not form.is_valid():
        return JsonResponse({"ok": False, "errors": {k: " ".join(v) for k, v in form.errors.items()}}, status=400)
    data = form.cleaned_data
    try:
        outcome = gallery_photos_enrol(
            enrolled_by=request.user,
            gallery=data["gallery"],
            photos=data["photos"],
            display_name=data["display_name"],
            date_of_birth=data["date_of_birth"],
            record_reference=data["record_reference"],
            new_name=data["new_name"],
            legal_basis=data["legal_basis"],
            legal_basis_reference=data["legal_basis_reference"],
            source_type=data["source_type"],
            responsible_person=data["responsible_person"],
            retention_days=data["retention_days"],
            ip_address=client_address(request),
        )
    except GalleryRefused as exc:
        return JsonResponse({"ok": False, "errors": {exc.field: str(exc)}}, status=400)
    gallery, results = outcome.gallery, outcome.results
    body = {"gallery": gallery.name, "gallery_id": gallery.id if outcome.kept else None, "results": results}
    if not outcome.enrolled:
        # Every photo refused: a client error, with each reason in the form's usual shape.
        reasons = " ".join(r["reason"] if len(results) == 1 else f"{r['file']}: {r['reason']}" for r in results)
        return JsonResponse({"ok": False, "errors": {"photos": reasons}, **body}, status=400)
    return JsonResponse({"ok": True, **body})
