"""The yearly usage report's page and CSV (search/usage.py makes the figures): an agency admin sees their own
agency, platform staff any agency or the whole platform."""

from __future__ import annotations

import csv

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from accounts.models import Agency
from accounts.selectors import agency_get_by_slug
from portal.access import private, usage_report_required
from portal.audit import audit_record
from portal.models import AuditEntry
from search import usage


def _scope(request) -> Agency | None:
    """The agency asked for: an agency admin's own (another slug is a 404); for platform staff the slug given, or
    None for the whole platform."""
    slug = (request.GET.get("agency") or "").strip()
    user = request.user
    if user.agency_id is not None:
        if slug and slug != user.agency.slug:
            raise Http404("No such agency.")
        return user.agency
    if not slug:
        return None
    agency = agency_get_by_slug(slug)
    if agency is None:
        raise Http404("No such agency.")
    return agency


def _audited(request, agency: Agency | None, year: int, form: str) -> None:
    audit_record(
        action=AuditEntry.Action.USAGE_REPORT,
        actor=request.user,
        agency=agency if agency is not None else request.user.agency,
        detail=f"Usage report {year} of {agency.name if agency else 'the whole platform'} ({form})",
        data={"year": year, "agency": agency.slug if agency else None, "form": form},
    )


@require_safe
@usage_report_required
def usage_report_page(request):
    agency = _scope(request)
    try:
        year = usage.usage_year_check(request.GET.get("year") or timezone.localdate().year)
    except usage.UsageRefused as exc:
        return render(request, "search/usage_report.html", {"error": str(exc), "agency": agency}, status=400)
    report = usage.usage_report(year=year, agency_id=agency.id if agency else None)
    outcomes = [(key, usage.OUTCOME_WORDS[key], report["searches"]["by_outcome"][key]) for key in usage.OUTCOME_KEYS]
    _audited(request, agency, year, "page")
    return render(
        request,
        "search/usage_report.html",
        {
            "report": report,
            "year": year,
            "agency": agency,
            "agencies": Agency.objects.order_by("name") if request.user.agency_id is None else [],
            "years": usage.usage_years(agency_id=agency.id if agency else None),
            "outcomes": outcomes,
            "outcome_chart": usage.usage_chart_bars(outcomes),
            "month_chart": usage.usage_chart_months(
                usage.usage_searches_by_month(year=year, agency_id=agency.id if agency else None)
            ),
        },
    )


@require_safe
@usage_report_required
def usage_report_csv(request):
    agency = _scope(request)
    try:
        year = usage.usage_year_check(request.GET.get("year") or timezone.localdate().year)
    except usage.UsageRefused as exc:
        return private(HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8"))
    report = usage.usage_report(year=year, agency_id=agency.id if agency else None)
    _audited(request, agency, year, "csv")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = f"usage-{year}-{agency.slug if agency else 'platform'}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = csv.writer(response)
    for row in usage.usage_csv_rows(report):
        writer.writerow(row)
    return private(response)
