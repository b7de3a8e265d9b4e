"""Dashboard and case pages: parse, call a selector or service, render."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from portal import selectors, services
from portal.access import agency_member_required
from portal.forms import CaseFilterForm, CaseForm
from search import selectors as search_selectors
from search.forms import ProbeUploadForm


@agency_member_required
def dashboard(request):
    return render(request, "portal/dashboard.html", {
        "open_cases": selectors.open_cases(user=request.user),
        "recent_jobs": search_selectors.recent_jobs(user=request.user),
    })


@agency_member_required
def case_list(request):
    filters = CaseFilterForm(request.GET or None)
    criteria = filters.cleaned_data if filters.is_valid() else {}
    return render(request, "portal/case_list.html", {
        "filters": filters,
        "cases": selectors.case_list(user=request.user, **criteria),
        "filtered": any(criteria.values()) if criteria else False,
    })


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


@agency_member_required
def case_detail(request, code):
    case = selectors.case_get(user=request.user, code=code)
    return render(request, "portal/case_detail.html", {
        "case": case,
        "jobs": search_selectors.jobs_for_case(case=case),
        "leads": search_selectors.confirmed_leads(case=case),
        "upload_form": ProbeUploadForm(),
    })


@agency_member_required
@require_POST
def case_close(request, code):
    case = services.case_close(case=selectors.case_get(user=request.user, code=code))
    messages.success(request, f"Case {case.number} closed. It can no longer be searched until it is reopened.")
    return redirect("portal:case-detail", code=case.code)


@agency_member_required
@require_POST
def case_reopen(request, code):
    case = services.case_reopen(case=selectors.case_get(user=request.user, code=code))
    messages.success(request, f"Case {case.number} reopened.")
    return redirect("portal:case-detail", code=case.code)
