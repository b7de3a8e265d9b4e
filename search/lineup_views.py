"""The lineup gate's pages: record independent evidence for a confirmed lead, and a supervisor's clearance.

The rules are search/lineup.py's; the state is shown where confirmed leads are (the comparison page, the case
page). Another agency's candidate is a 404 (the selector), before any rule is looked at.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from portal.access import agency_member_required
from portal.client_address import client_address
from search import lineup, selectors
from search.models import IndependentEvidence


class EvidenceForm(forms.Form):
    """The fields as typed; search.lineup decides what is valid (one home for the rules), the form only asks
    for the statement of independence."""

    kind = forms.CharField(
        label="Kind of evidence",
        widget=forms.Select(choices=[("", "Choose…"), *IndependentEvidence.Kind.choices]),
        required=False,
    )
    description = forms.CharField(
        label="What the evidence is and what it shows",
        widget=forms.Textarea(attrs={"rows": 4}),
        required=False,
        max_length=5000,
        help_text=f"At least {lineup.MIN_DESCRIPTION} characters. Not the face search or anything drawn from it.",
    )
    obtained_by = forms.CharField(label="Obtained by", required=False, max_length=200, help_text="Name and unit")
    obtained_on = forms.CharField(
        label="Obtained on", required=False, widget=forms.DateInput(attrs={"type": "date"}), help_text="YYYY-MM-DD"
    )
    independent = forms.BooleanField(
        label=lineup.INDEPENDENCE_STATEMENT,
        required=True,
        error_messages={"required": f"Tick “{lineup.INDEPENDENCE_STATEMENT}”: only such evidence may be recorded."},
    )


def _candidate(request, code, face, rank):
    return selectors.candidate_get(user=request.user, job_code=code, face_index=face, rank=rank)


def _evidence_page(request, candidate, form, *, status=200):
    review = getattr(candidate, "review", None)
    return render(
        request,
        "search/lineup_evidence.html",
        {
            "candidate": candidate,
            "job": candidate.job,
            "review": review,
            "clearance": lineup.clearance_of(review),
            "may_record": lineup.may_record_evidence(user=request.user, review=review),
            "form": form,
        },
        status=status,
    )


@require_http_methods(["GET", "HEAD", "POST"])
@agency_member_required
def evidence_record(request, code, face, rank):
    """The evidence form of a confirmed lead (GET), and recording it (POST)."""
    candidate = _candidate(request, code, face, rank)
    if request.method != "POST":
        return _evidence_page(request, candidate, EvidenceForm())
    form = EvidenceForm(request.POST)
    if not form.is_valid():
        return _evidence_page(request, candidate, form, status=400)
    try:
        lineup.evidence_record(
            review=getattr(candidate, "review", None) or _no_review(),
            user=request.user,
            kind=form.cleaned_data["kind"],
            description=form.cleaned_data["description"],
            obtained_by=form.cleaned_data["obtained_by"],
            obtained_on=form.cleaned_data["obtained_on"],
            ip_address=client_address(request),
        )
    except lineup.EvidenceErrors as exc:
        for name, message in exc.errors.items():
            form.add_error(name, message)
        return _evidence_page(request, candidate, form, status=400)
    except lineup.ClearanceRefused as exc:
        form.add_error(None, str(exc))
        return _evidence_page(request, candidate, form, status=400)
    messages.success(
        request,
        "Independent evidence recorded. The lead is still not cleared for identification procedures until a "
        "supervisor clears it.",
    )
    return redirect("search:candidate-compare", code=code, face=face, rank=rank)


def _no_review():
    raise lineup.ClearanceRefused("This candidate is not a confirmed lead: nothing was recorded.")


@agency_member_required
@require_POST
def lead_clear(request, code, face, rank):
    """A supervisor clears a confirmed lead with independent evidence for identification procedures."""
    candidate = _candidate(request, code, face, rank)
    try:
        lineup.lead_clear(
            review=getattr(candidate, "review", None) or _no_review(),
            user=request.user,
            note=request.POST.get("note", ""),
            ip_address=client_address(request),
        )
    except lineup.ClearanceRefused as exc:
        messages.error(request, f"Not cleared. {exc}")
    else:
        messages.success(request, "Cleared for identification procedures, on the independent evidence recorded.")
    return redirect("search:candidate-compare", code=code, face=face, rank=rank)
