"""Dashboard and case pages: parse, call a selector or service, render."""

import csv

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from accounts.middleware import passive
from portal import selectors, services
from portal.access import agency_member_required, private, supervisor_required
from portal.audit import audit_csv_rows, audit_record
from portal.client_address import client_address
from portal.forms import AuditFilterForm, CaseCloseForm, CaseFilterForm, CaseForm
from portal.models import AuditEntry, CaseReport
from search import selectors as search_selectors
from search.forms import ProbeUploadForm


@require_safe
@agency_member_required
def dashboard(request):
    return render(
        request,
        "portal/dashboard.html",
        {
            "open_cases": selectors.open_cases(user=request.user),
            "recent_jobs": search_selectors.recent_jobs(user=request.user),
        },
    )


@require_safe
@agency_member_required
def case_list(request):
    filters = CaseFilterForm(request.GET or None)
    criteria = filters.cleaned_data if filters.is_valid() else {}
    return render(
        request,
        "portal/case_list.html",
        {
            "filters": filters,
            "cases": selectors.case_list(user=request.user, **criteria),
            "filtered": any(criteria.values()) if criteria else False,
        },
    )


@require_http_methods(["GET", "HEAD", "POST"])
@agency_member_required
def case_create(request):
    form = CaseForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            case = services.case_create(created_by=request.user, **form.cleaned_data)
        except services.CaseError as exc:
            form.add_error("number", str(exc))
        else:
            messages.success(request, f"Case {case.number} opened.")
            return redirect("portal:case-detail", code=case.code)
    return render(request, "portal/case_form.html", {"form": form})


@require_safe
@agency_member_required
def case_detail(request, code):
    case = selectors.case_get(user=request.user, code=code)
    return render(
        request, "portal/case_detail.html", selectors.case_page_context(case=case, upload_form=ProbeUploadForm())
    )


@agency_member_required
@require_POST
def case_close(request, code):
    case = selectors.case_get(user=request.user, code=code)
    if not CaseCloseForm(request.POST).is_valid():
        messages.error(request, f"Case {case.number} is still open: tick “I want to close this case” to close it.")
        return redirect("portal:case-detail", code=case.code)
    case = services.case_close(case=case, actor=request.user)
    messages.success(request, f"Case {case.number} closed. It can no longer be searched until it is reopened.")
    return redirect("portal:case-detail", code=case.code)


@agency_member_required
@require_POST
def case_reopen(request, code):
    case = services.case_reopen(case=selectors.case_get(user=request.user, code=code), actor=request.user)
    messages.success(request, f"Case {case.number} reopened.")
    return redirect("portal:case-detail", code=case.code)


# --- Audit log ------------------------------------------------------------------------------------


def _audit_filtered(request):
    filters = AuditFilterForm(request.GET or None)
    criteria = filters.cleaned_data if filters.is_valid() else {}
    entries = selectors.audit_entries(
        user=request.user,
        username=criteria.get("username", ""),
        case_number=criteria.get("case", ""),
        action=criteria.get("action", ""),
        date_from=criteria.get("date_from"),
        date_to=criteria.get("date_to"),
    )
    return filters, entries


@require_safe
@supervisor_required
def audit_log(request):
    filters, entries = _audit_filtered(request)
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "portal/audit.html",
        {
            "filters": filters,
            "page": page,
            "query": query.urlencode(),
            "summaries": selectors.officer_summaries(user=request.user),
        },
    )


@require_safe
@supervisor_required
def audit_export(request):
    filters, entries = _audit_filtered(request)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    filename = f"audit-{request.user.agency.slug}-{timezone.now():%Y%m%d-%H%M}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    private(response)
    writer = csv.writer(response)
    count = -1  # the header row
    for row in audit_csv_rows(entries.iterator()):
        writer.writerow(row)
        count += 1
    audit_record(
        action=AuditEntry.Action.AUDIT_EXPORTED,
        actor=request.user,
        ip_address=client_address(request),
        detail=f"{count} entries",
        data={"filters": request.GET.dict()},
    )
    return response


# --- Case report ----------------------------------------------------------------------------------


@agency_member_required
@require_POST
def case_report_request(request, code):
    case = selectors.case_get(user=request.user, code=code)
    services.case_report_request(case=case, user=request.user, ip_address=client_address(request))
    messages.success(request, "The case report is being prepared; it appears below in a moment.")
    return redirect("portal:case-detail", code=case.code)


@passive  # polling is not activity: a case page left open still times out
@require_safe
@agency_member_required
def case_report_status(request, code):
    report = selectors.case_report_get(user=request.user, code=code)
    ready = report.status == CaseReport.Status.DONE and bool(report.file)
    return JsonResponse(
        {
            "status": report.status,
            "status_label": report.get_status_display(),
            "finished": report.status != CaseReport.Status.QUEUED,
            "download_url": reverse("portal:case-report-download", kwargs={"code": report.code}) if ready else None,
            "message": "The report could not be made: prepare it again."
            if report.status == CaseReport.Status.FAILED
            else "",
        },
        headers={"Cache-Control": "private, no-store"},
    )


@require_safe
@agency_member_required
def case_report_download(request, code):
    report = selectors.case_report_get(user=request.user, code=code)
    if report.status != CaseReport.Status.DONE or not report.file:
        raise Http404("The report is not ready")
    audit_record(
        action=AuditEntry.Action.REPORT_DOWNLOADED,
        actor=request.user,
        case=report.case,
        target=report,
        ip_address=client_address(request),
    )
    return private(
        FileResponse(
            report.file.open("rb"),
            content_type="application/pdf",
            as_attachment=True,
            filename=f"case-{report.case.number}-report.pdf",
        )
    )
