"""Pages of the watch-list: proposing a face from a search's results, the agency's entries with the supervisors'
decisions, and the alerts, each opening as an ordinary comparison (search/watchlist.py holds the rules)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST, require_safe

from accounts.models import Role
from portal.access import agency_member_required
from portal.client_address import client_address
from search import selectors, watchlist

SEARCHING_ROLES = (Role.OFFICER, Role.SUPERVISOR)


class ProposeForm(forms.Form):
    days = forms.IntegerField(required=False, min_value=1, max_value=365, label="Days on the watch-list")
    note = forms.CharField(required=False, max_length=1000, widget=forms.Textarea, label="Why this face")


class DecideForm(forms.Form):
    approve = forms.BooleanField(required=False)
    note = forms.CharField(required=False, max_length=1000)


class EndForm(forms.Form):
    reason = forms.CharField(max_length=100)


def _refused(request, message: str):
    return render(request, "search/watchlist_refused.html", {"message": message}, status=400)


def _searcher_only(request):
    if request.user.role not in SEARCHING_ROLES:
        return render(request, "403.html", status=403)
    return None


@agency_member_required
@require_POST
def watchlist_propose(request, code, face):
    probe_face = selectors.probe_face_get(user=request.user, job_code=code, index=face)
    form = ProposeForm(request.POST)
    if not form.is_valid():
        return _refused(request, " ".join(str(error) for errors in form.errors.values() for error in errors))
    try:
        watchlist.watchlist_propose(
            probe_face=probe_face,
            user=request.user,
            days=form.cleaned_data["days"],
            note=form.cleaned_data["note"],
            ip_address=client_address(request),
        )
    except watchlist.WatchlistRefused as exc:
        return _refused(request, str(exc))
    messages.success(request, "Proposed for the watch-list: a supervisor other than you decides.")
    return redirect("search:watchlist")


@require_safe
@agency_member_required
def watchlist_page(request):
    refused = _searcher_only(request)
    if refused:
        return refused
    entries = list(watchlist.watchlist_entries_of(user=request.user))
    return render(
        request,
        "search/watchlist.html",
        {
            "proposed": [e for e in entries if e.status == "proposed"],
            "active": [e for e in entries if e.status == "active"],
            "done": [e for e in entries if e.status in ("rejected", "ended")],
            "alerts": watchlist.watchlist_alerts_of(user=request.user)[:100],
            "is_supervisor": request.user.role == Role.SUPERVISOR,
        },
    )


def _entry_get(request, code):
    entry = watchlist.watchlist_entry_get(user=request.user, code=code)
    if entry is None:
        raise Http404  # another agency's entry is not told apart from none
    return entry


@agency_member_required
@require_POST
def watchlist_decide(request, code):
    entry = _entry_get(request, code)
    form = DecideForm(request.POST)
    if not form.is_valid():
        return _refused(request, "The decision could not be read.")
    try:
        entry = watchlist.watchlist_decide(
            entry=entry,
            user=request.user,
            approve=form.cleaned_data["approve"],
            note=form.cleaned_data["note"],
            ip_address=client_address(request),
        )
    except watchlist.WatchlistRefused as exc:
        return _refused(request, str(exc))
    messages.success(request, f"Decision recorded: {entry.get_status_display().lower()}.")
    return redirect("search:watchlist")


@agency_member_required
@require_POST
def watchlist_end(request, code):
    entry = _entry_get(request, code)
    form = EndForm(request.POST)
    if not form.is_valid():
        return _refused(request, "Say why the entry is removed.")
    try:
        watchlist.watchlist_end_by_user(entry=entry, user=request.user, reason=form.cleaned_data["reason"])
    except watchlist.WatchlistRefused as exc:
        return _refused(request, str(exc))
    messages.success(request, "Removed from the watch-list.")
    return redirect("search:watchlist")


@agency_member_required
@require_POST
def watchlist_alert_open(request, alert):
    found = watchlist.watchlist_alert_get(user=request.user, alert_id=alert)
    if found is None:
        raise Http404
    watchlist.watchlist_alert_open(alert=found, user=request.user)
    candidate = found.candidate
    return redirect(
        "search:candidate-compare", code=candidate.job.code, face=candidate.probe_face.index, rank=candidate.rank
    )
