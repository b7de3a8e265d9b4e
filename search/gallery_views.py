"""The agency admin's galleries page: provenance, and enrolment of photos with a progress display."""

from __future__ import annotations

from django import forms
from django.db.models import Count
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST, require_safe

from portal.access import agency_admin_required
from portal.audit import audit_record
from portal.models import AuditEntry
from search.forms import MultiplePhotoField
from search.imaging import PhotoRejected, photo_size_check
from search.models import Gallery
from search.services import EnrolmentSkipped, face_image_enrol, gallery_get_or_create, profile_get_or_create
from portal.client_address import client_address


class EnrolmentForm(forms.Form):
    gallery = forms.ModelChoiceField(queryset=Gallery.objects.none(), required=False, empty_label="A new gallery…",
                                     label="Gallery")
    new_name = forms.CharField(required=False, label="New gallery: name")
    source_type = forms.ChoiceField(required=False, choices=[("", "—"), *Gallery.SourceType.choices],
                                    label="New gallery: source")
    legal_basis = forms.CharField(required=False, label="New gallery: legal basis")
    legal_basis_reference = forms.CharField(required=False, label="New gallery: act or agreement")
    responsible_person = forms.CharField(required=False, label="New gallery: responsible person")
    retention_days = forms.IntegerField(required=False, min_value=1, label="New gallery: retention (days)")
    display_name = forms.CharField(max_length=200, label="Person's name (profile)")
    date_of_birth = forms.DateField(required=False, label="Date of birth",
                                    widget=forms.DateInput(attrs={"type": "date"}))
    record_reference = forms.CharField(required=False, label="Record reference")
    photos = MultiplePhotoField(label="Photos of this person")

    def __init__(self, *args, agency=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["gallery"].queryset = Gallery.objects.filter(owner=agency)


@require_safe
@agency_admin_required
def gallery_list(request):
    agency = request.user.agency
    return render(request, "search/galleries.html", {
        "galleries": Gallery.objects.filter(owner=agency).annotate(faces=Count("face_images")),
        "form": EnrolmentForm(agency=agency),
    })


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
        gallery, created = (data["gallery"], False) if data["gallery"] else gallery_get_or_create(
            owner=agency, name=data["new_name"].strip() or "", legal_basis=data["legal_basis"],
            legal_basis_reference=data["legal_basis_reference"], source_type=data["source_type"],
            responsible_person=data["responsible_person"], retention_days=data["retention_days"])
    except EnrolmentSkipped as exc:
        return JsonResponse({"ok": False, "errors": {"gallery": str(exc)}}, status=400)
    if not gallery.name:
        return JsonResponse({"ok": False, "errors": {"new_name": "Name the new gallery."}}, status=400)
    profile = profile_get_or_create(gallery=gallery, display_name=data["display_name"].strip(),
                                    date_of_birth=data["date_of_birth"], record_reference=data["record_reference"])
    results = []
    for upload in data["photos"]:
        try:
            photo_size_check(upload.size)  # before the file is read into memory
            # The name is the sender's: kept for the record (cut to the column), never used as a path.
            face_image_enrol(profile=profile, data=upload.read(), source_name=upload.name[:255],
                             enrolled_by=request.user)
        except PhotoRejected as exc:
            results.append({"file": upload.name, "ok": False, "reason": str(exc), "code": "unreadable"})
        except EnrolmentSkipped as exc:
            results.append({"file": upload.name, "ok": False, "reason": str(exc), "code": exc.code})
        else:
            results.append({"file": upload.name, "ok": True})
    enrolled = sum(r["ok"] for r in results)
    if not profile.face_images.exists():
        profile.delete()  # nothing enrolled: no empty record
    kept = enrolled or not created
    audit_record(action=AuditEntry.Action.GALLERY_ENROLLED, actor=request.user, target=gallery if kept else None,
                 ip_address=client_address(request),
                 detail=f"{enrolled} faces enrolled into {gallery.name}, {len(results) - enrolled} skipped"
                        + ("" if kept else " (the new gallery was not kept)"),
                 data={"gallery_created": created and kept, "faces_enrolled": enrolled,
                       "skipped": len(results) - enrolled})
    if not kept:
        gallery.delete()  # a new gallery that received nothing is not left behind empty
    body = {"gallery": gallery.name, "gallery_id": gallery.id if kept else None, "results": results}
    if not enrolled:
        # Every photo refused: a client error, with each reason in the form's usual shape.
        reasons = " ".join(r["reason"] if len(results) == 1 else f"{r['file']}: {r['reason']}" for r in results)
        return JsonResponse({"ok": False, "errors": {"photos": reasons}, **body}, status=400)
    return JsonResponse({"ok": True, **body})
