"""Reads for cases, always scoped to the user's agency."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from django.db.models import Count, Exists, OuterRef, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from accounts.models import User
from portal.models import AuditEntry, Case, CaseReport
from search import selectors as search_selectors
from search.models import Candidate, LeadReview, SearchJob


def case_get(*, user: User, code: UUID) -> Case:
    # 404, not 403: a user must not learn that another agency's case exists.
    return get_object_or_404(Case, code=code, agency_id=user.agency_id)


def case_report_get(*, user: User, code: UUID) -> CaseReport:
    return get_object_or_404(CaseReport.objects.select_related("case"), code=code, case__agency_id=user.agency_id)


def case_list(*, user: User, status: str = "", number: str = "", title: str = "") -> QuerySet[Case]:
    cases = Case.objects.filter(agency_id=user.agency_id).select_related("created_by")
    if status in (Case.Status.OPEN, Case.Status.CLOSED):
        cases = cases.filter(status=status)
    if number:
        cases = cases.filter(number__icontains=number.strip())
    if title:
        cases = cases.filter(title__icontains=title.strip())
    return cases.annotate(search_count=Count("probes__jobs", distinct=True)).order_by("-created_at")


def open_cases(*, user: User) -> QuerySet[Case]:
    return case_list(user=user, status=Case.Status.OPEN)[:10]


def case_page_context(*, case: Case, upload_form) -> dict:
    """What the case page shows: its searches, confirmed leads, latest reports, and the upload form given
    (blank from the case view, with its errors from the upload view)."""
    return {
        "case": case,
        "jobs": search_selectors.jobs_for_case(case=case),
        "leads": search_selectors.confirmed_leads(case=case),
        "reports": case.reports.select_related("requested_by")[:5],
        "upload_form": upload_form,
        "searchable_faces": search_selectors.searchable_face_count(agency_id=case.agency_id),
        "lawful": search_selectors.case_lawful_use(case=case),
    }


# --- Audit log (supervisors and agency admins, their own agency only) ---------------------------


def audit_entries(
    *, user: User, username: str = "", case_number: str = "", action: str = "", date_from=None, date_to=None
) -> QuerySet[AuditEntry]:
    entries = AuditEntry.objects.filter(agency_id=user.agency_id).select_related("case", "actor")
    if username:
        entries = entries.filter(username__iexact=username.strip())
    if case_number:
        entries = entries.filter(case__number__iexact=case_number.strip())
    if action:
        entries = entries.filter(action=action)
    if date_from:
        entries = entries.filter(at__date__gte=date_from)
    if date_to:
        entries = entries.filter(at__date__lte=date_to)
    return entries.order_by("-id")


def officer_summaries(*, user: User, weeks: int = 8, today=None) -> list[dict]:
    """Per user of the agency: searches per week, the share that led to a confirmed lead, and the
    searches that found no one under the threshold."""
    today = today or timezone.localdate()
    start = today - timedelta(days=today.weekday()) - timedelta(weeks=weeks - 1)
    jobs = (
        SearchJob.objects.filter(agency_id=user.agency_id, created_at__date__gte=start)
        .annotate(
            confirmed=Exists(
                LeadReview.objects.filter(candidate__job=OuterRef("pk"), status=LeadReview.Status.CONFIRMED)
            ),
            likely=Exists(Candidate.objects.filter(search_selectors.likely_candidate_rule(), job=OuterRef("pk"))),
        )
        .values("started_by__username", "created_at", "status", "confirmed", "likely")
    )
    rows: dict[str, dict] = {}
    for job in jobs:
        row = rows.setdefault(
            job["started_by__username"],
            {
                "username": job["started_by__username"],
                "weeks": [0] * weeks,
                "searches": 0,
                "confirmed": 0,
                "found_no_one": 0,
            },
        )
        week = (timezone.localtime(job["created_at"]).date() - start).days // 7
        row["weeks"][min(max(week, 0), weeks - 1)] += 1
        row["searches"] += 1
        row["confirmed"] += job["confirmed"]
        row["found_no_one"] += job["status"] == "done" and not job["likely"]
    for row in rows.values():
        row["confirmed_share"] = round(100 * row["confirmed"] / row["searches"]) if row["searches"] else 0
        peak = max(row["weeks"]) or 1
        row["bars"] = [
            {"x": i * 14, "height": round(28 * count / peak), "y": 30 - round(28 * count / peak), "count": count}
            for i, count in enumerate(row["weeks"])
        ]
    return sorted(rows.values(), key=lambda r: r["username"])
