"""Pages of lawful use: the agency's policy and the user's certification, and the authority's answer for a case
(search/lawful_use.py holds the rules)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from accounts.selectors import agency_policy
from portal import selectors as case_selectors
from portal.access import agency_member_required
from portal.client_address import client_address
from search import lawful_use, selectors
from search.forms import AuthorisationGrantForm, AuthorisationRefuseForm, ProbeUploadForm
from search.gallery_scope import galleries_searchable_by


def end_of_day(day) -> datetime | None:
    """A "valid until" date covers the whole of that day, in the deployment's time zone."""
    if day is None:
        return None
    return timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))


def _case_page(request, case, *, grant_form=None, refuse_form=None):
    context = case_selectors.case_page_context(case=case, upload_form=ProbeUploadForm()) | {
        "grant_form": grant_form,
        "refuse_form": refuse_form,
    }
    return render(request, "portal/case_detail.html", context, status=400)


@require_safe
@agency_member_required
def lawful_use_page(request):
    """The agency's policy as its users meet it, the user's own certification, and the cases whose
    authorisation waits for the authority's answer."""
    user = request.user
    return render(
        request,
        "search/lawful_use.html",
        {
            "policy": agency_policy(agency_id=user.agency_id),
            "certified": lawful_use_certified(user),
            "requests": selectors.authorisation_requests_open(agency_id=user.agency_id),
            "authorisations": selectors.authorisations_of_agency(agency_id=user.agency_id),
            "now": timezone.now(),
        },
    )


def lawful_use_certified(user) -> str:
    """The user's certification in a few words: current, expired or none."""
    try:
        lawful_use.searcher_check(user)
    except lawful_use.UseRefused as exc:
        return str(exc)
    if user.search_certified_until:
        return f"Your face-search certification is valid until {user.search_certified_until:%d %b %Y}."
    return "Your agency's policy does not ask for a face-search certification."


@agency_member_required
@require_POST
def authorisation_grant(request, case_code):
    case = case_selectors.case_get(user=request.user, code=case_code)
    form = AuthorisationGrantForm(request.POST, galleries=galleries_searchable_by(agency_id=case.agency_id))
    if not form.is_valid():
        return _case_page(request, case, grant_form=form)
    data = form.cleaned_data
    try:
        grant = lawful_use.authorisation_grant(
            case=case,
            user=request.user,
            authority=data["authority"],
            reference=data["reference"],
            decided_on=data["decided_on"],
            expires_at=end_of_day(data["valid_until"]),
            gallery_ids=[g.id for g in data["galleries"]],
            category_ids=[c.id for c in data["offense_categories"]],
            ip_address=client_address(request),
        )
    except lawful_use.AuthorisationError as exc:
        for name, message in exc.errors.items():
            form.add_error(name if name in form.fields else "valid_until" if name == "expires_at" else None, message)
        return _case_page(request, case, grant_form=form)
    except lawful_use.UseRefused as exc:
        messages.error(request, str(exc))
        return redirect("portal:case-detail", code=case.code)
    messages.success(request, f"Recorded: {lawful_use.authorisation_words(grant)}.")
    return redirect("portal:case-detail", code=case.code)


@agency_member_required
@require_POST
def authorisation_refuse(request, case_code):
    case = case_selectors.case_get(user=request.user, code=case_code)
    form = AuthorisationRefuseForm(request.POST)
    if not form.is_valid():
        return _case_page(request, case, refuse_form=form)
    data = form.cleaned_data
    try:
        erased = lawful_use.authorisation_refuse(
            case=case,
            user=request.user,
            authority=data["authority"],
            reference=data["reference"],
            decided_on=data["decided_on"],
            reason=data["refusal_reason"],
            ip_address=client_address(request),
        )
    except lawful_use.AuthorisationError as exc:
        for name, message in exc.errors.items():
            form.add_error(name if name in form.fields else None, message)
        return _case_page(request, case, refuse_form=form)
    except lawful_use.UseRefused as exc:
        messages.error(request, str(exc))
        return redirect("portal:case-detail", code=case.code)
    messages.success(
        request,
        f"Refusal recorded. The case can no longer be searched; {erased['searches']} searches, {erased['probes']} "
        f"probe photos, {erased['videos']} videos and {erased['reports']} reports were erased. The audit log keeps "
        "that it happened and why.",
    )
    return redirect("portal:case-detail", code=case.code)
