"""The agency admin's galleries page: provenance, enrolment of photos with a progress display, and the import of
ANSI/NIST-ITL booking records (posted to the same address, marked import=nist)."""

from __future__ import annotations

from django import forms
from django.db.models import Count
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST, require_safe

from portal.access import agency_admin_required
from portal.client_address import client_address
from search.enrolment import GalleryRefused, gallery_nist_upload, gallery_photos_enrol, is_nist
from search.forms import MultipleNistField, MultiplePhotoField
from search.models import Gallery


class GalleryChoiceForm(forms.Form):
    """The gallery to enrol into: one of the agency's, or a new one with its provenance."""

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

    def __init__(self, *args, agency=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["gallery"].queryset = Gallery.objects.filter(owner=agency)


class EnrolmentForm(GalleryChoiceForm):
    display_name = forms.CharField(max_length=200, label="Person's name (profile)")
    date_of_birth = forms.DateField(
        required=False, label="Date of birth", widget=forms.DateInput(attrs={"type": "date"})
    )
    record_reference = forms.CharField(required=False, label="Record reference")
    photos = MultiplePhotoField(label="Photos of this person")


class NistImportForm(GalleryChoiceForm):
    prefix = "nist"  # its fields sit on the same page as the photo form's
    records = MultipleNistField(label="Booking records (.an2, .nist, .eft)")


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
            "nist_form": NistImportForm(agency=agency),
        },
    )


@agency_admin_required
@require_POST
def gallery_enrol(request):
    """Enrol the posted photos; the page's script posts them one at a time to show progress."""
    agency = request.user.agency
    if request.POST.get("import") == "nist":
        return _nist_import(request)
    form = EnrolmentForm(request.POST, request.FILES, agency=agency)
    if form.is_valid() and (records := [p.name for p in form.cleaned_data["photos"] if _is_nist_upload(p)]):
        form.add_error(
            "photos",
            f"{', '.join(records)}: an ANSI/NIST-ITL booking record, not a photo: use “Import booking records”.",
        )
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


def _is_nist_upload(upload) -> bool:
    head = upload.read(8)
    upload.seek(0)
    return is_nist(head)


def _nist_import(request):
    """Import the posted NIST files (the page's script posts one at a time) and say what became of each."""
    form = NistImportForm(request.POST, request.FILES, agency=request.user.agency)
    if not form.is_valid():
        errors = {name.removeprefix("nist-"): " ".join(v) for name, v in form.errors.items()}
        return JsonResponse({"ok": False, "errors": errors}, status=400)
    data = form.cleaned_data
    try:
        summary = gallery_nist_upload(
            enrolled_by=request.user,
            gallery=data["gallery"],
            uploads=data["records"],
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
    result = summary.as_dict()
    results = []
    for upload in data["records"]:
        own = [s for s in result["skipped"] if s["file"] == upload.name or s["file"].startswith(upload.name + " ")]
        refused_whole = any(s["file"] == upload.name for s in own)
        results.append(
            {"file": upload.name, "ok": not refused_whole and bool(result["faces_enrolled"]), "skipped": own}
        )
    body = {"summary": result, "gallery": result["gallery"], "gallery_id": result["gallery_id"], "results": results}
    if not summary.faces_enrolled:
        reasons = " ".join(f"{s['file']}: {s['reason']}" for s in result["skipped"])
        return JsonResponse({"ok": False, "errors": {"records": reasons}, **body}, status=400)
    return JsonResponse({"ok": True, **body})
