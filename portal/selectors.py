"""Reads for cases, always scoped to the user's agency."""

from __future__ import annotations

from uuid import UUID

from django.db.models import Count, Q, QuerySet
from django.shortcuts import get_object_or_404

from accounts.models import User
from portal.models import Case


def case_get(*, user: User, code: UUID) -> Case:
    # 404, not 403: a user must not learn that another agency's case exists.
    return get_object_or_404(Case, code=code, agency_id=user.agency_id)


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


def case_exists(*, user: User, number: str) -> bool:
    return Case.objects.filter(Q(agency_id=user.agency_id) & Q(number=number.strip())).exists()
