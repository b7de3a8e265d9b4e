"""The yearly usage report of an agency or of the whole platform (EU AI Act art. 26(10)): pure reads.

The searches of a year are its `search_started` audit entries, not the SearchJob rows: a search whose data
was erased since (a refused authorisation, retention, a data-subject erasure) still counts, under "erased".
docs/usage-report.md holds the keys and what each counts.
"""

from __future__ import annotations

from datetime import date, datetime

from django.db.models import Case, CharField, Count, Exists, OuterRef, Q, Subquery, UUIDField, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, TruncMonth
from django.utils import timezone

from accounts.models import AGENCY_ROLES, Agency, User
from portal import db_routing
from portal.audit import csv_cell
from portal.models import AuditEntry
from search.models import Candidate, LeadReview, ProbeFace, SearchJob, SubjectRequest

YEAR_MIN, YEAR_MAX = 2000, 2100

# The furthest a search's faces got, in this order; a search's outcome is the furthest of its faces.
OUTCOMES = (
    "failed_or_no_face",
    "low_quality",
    "no_likely_candidate",
    "likely_candidate",
    "confirmed_lead",
    "cleared",
)
# Always present too, so that the outcomes add up to the total: queued or running when the report is made,
# and searches whose rows are gone (known only from the audit).
PENDING, ERASED = "pending", "erased"
OUTCOME_KEYS = (*OUTCOMES, PENDING, ERASED)
OUTCOME_WORDS = {
    "failed_or_no_face": "Failed or no face found",
    "low_quality": "Face too small or blurred",
    "no_likely_candidate": "No likely candidate",
    "likely_candidate": "Likely candidate",
    "confirmed_lead": "Confirmed lead (two people)",
    "cleared": "Cleared for identification procedures",
    PENDING: "Still queued or running",
    ERASED: "Erased since (audit only)",
}
AUTHORISATION_ACTIONS = {
    "requested": AuditEntry.Action.AUTHORISATION_REQUESTED,
    "granted": AuditEntry.Action.AUTHORISATION_GRANTED,
    "refused": AuditEntry.Action.AUTHORISATION_REFUSED,
}


class UsageRefused(ValueError):
    """A report that cannot be made as asked (the year)."""


def usage_year_check(value) -> int:
    """The year asked for, as a number between 2000 and 2100; raises UsageRefused with the reason."""
    text = str(value).strip()
    if not text.isdigit():
        raise UsageRefused(f"The year must be a number such as {timezone.localdate().year}, not {text!r}.")
    year = int(text)
    if not YEAR_MIN <= year <= YEAR_MAX:
        raise UsageRefused(f"The year must be between {YEAR_MIN} and {YEAR_MAX}, not {year}.")
    return year


def _year_bounds(year: int) -> tuple[datetime, datetime]:
    # The portal's time zone decides which year a search near midnight on 31 December belongs to.
    zone = timezone.get_current_timezone()
    return datetime(year, 1, 1, tzinfo=zone), datetime(year + 1, 1, 1, tzinfo=zone)


def _entries(*, year: int, agency_id: int | None, actions):
    start, end = _year_bounds(year)
    entries = AuditEntry.objects.filter(action__in=list(actions), at__gte=start, at__lt=end)
    return entries if agency_id is None else entries.filter(agency_id=agency_id)


def _searches_started(*, year: int, agency_id: int | None):
    return _entries(year=year, agency_id=agency_id, actions=[AuditEntry.Action.SEARCH_STARTED])


def _by_outcome(started) -> dict[str, int]:
    """Each search's outcome, counted in one aggregate query over the jobs the year's entries name."""
    job_codes = started.annotate(job_code=Cast(KeyTextTransform("job", "data"), UUIDField())).values("job_code")
    reviews = LeadReview.objects.filter(candidate__job=OuterRef("pk"))
    faces = ProbeFace.objects.filter(probe=OuterRef("probe_id"))
    counts = (
        SearchJob.objects.filter(code__in=Subquery(job_codes))
        .annotate(
            outcome=Case(
                When(status__in=[SearchJob.Status.QUEUED, SearchJob.Status.RUNNING], then=Value(PENDING)),
                When(status=SearchJob.Status.FAILED, then=Value("failed_or_no_face")),
                When(Exists(reviews.filter(cleared_at__isnull=False)), then=Value("cleared")),
                When(Exists(reviews.filter(status=LeadReview.Status.CONFIRMED)), then=Value("confirmed_lead")),
                # Faces searched before decisions were recorded have none: their likely candidates tell.
                When(
                    Exists(faces.filter(decision="likely"))
                    | Exists(Candidate.objects.filter(job=OuterRef("pk"), likely=True)),
                    then=Value("likely_candidate"),
                ),
                When(Exists(faces.filter(decision__in=["none", ""])), then=Value("no_likely_candidate")),
                When(Exists(faces.filter(decision="low_quality")), then=Value("low_quality")),
                # Done without a face: nothing was searched.
                default=Value("failed_or_no_face"),
                output_field=CharField(),
            )
        )
        .values("outcome")
        .annotate(count=Count("id"))
        .order_by()
    )
    by_outcome = dict.fromkeys(OUTCOME_KEYS, 0)
    for row in counts:
        by_outcome[row["outcome"]] += row["count"]
    by_outcome[ERASED] = started.count() - sum(by_outcome.values())
    return by_outcome


def _erasures(*, year: int, agency: Agency | None) -> int:
    """Data-subject erasures and case search data erased after a refused authorisation.

    A data-subject erasure is the privacy officer's, audited without an agency: it counts for each agency
    whose galleries lost a profile in it (the request's outcome names the gallery owner). A re-application
    after a restore is the same erasure again, not another one.
    """
    case_data = _entries(year=year, agency_id=agency and agency.id, actions=[AuditEntry.Action.CASE_SEARCH_DATA_ERASED])
    subject = _entries(year=year, agency_id=None, actions=[AuditEntry.Action.SUBJECT_ERASED]).exclude(
        data__reapplied=True
    )
    if agency is not None:
        requests = SubjectRequest.objects.filter(outcome__erased_profiles__contains=[{"agency": agency.name}])
        request_ids = [str(pk) for pk in requests.values_list("id", flat=True)]
        subject = subject.filter(
            Q(agency_id=agency.id) | Q(target_type="search.subjectrequest", target_id__in=request_ids)
        )
    return case_data.count() + subject.count()


def usage_certification_day(year: int) -> date:
    """The day certifications are counted on: the year's last, or today during the year."""
    today = timezone.localdate()
    return today if year == today.year else date(year, 12, 31)


def _certified_users(*, year: int, agency_id: int | None) -> int:
    day = usage_certification_day(year)
    users = User.objects.filter(is_active=True, role__in=[r.value for r in AGENCY_ROLES])
    if agency_id is not None:
        users = users.filter(agency_id=agency_id)
    return users.filter(
        Q(search_trained_on__lte=day) | Q(search_trained_on__isnull=True), search_certified_until__gte=day
    ).count()


# A year's figures are heavy and read-only: read on a replica that has replayed every commit made before the
# call (so a page still shows what was just done), else on the primary (portal/db_routing.py).
@db_routing.replica_reads()
def usage_report(*, year: int, agency_id: int | None) -> dict:
    """The year's figures of one agency, or of the whole platform when agency_id is None."""
    agency = Agency.objects.get(pk=agency_id) if agency_id is not None else None
    started = _searches_started(year=year, agency_id=agency_id)
    by_offense = {
        row["purpose"] or "(none stated)": row["count"]
        for row in started.annotate(purpose=KeyTextTransform("purpose", "data"))
        .values("purpose")
        .annotate(count=Count("id"))
        .order_by("purpose")
    }
    authorisations = {
        row["action"]: row["count"]
        for row in _entries(year=year, agency_id=agency_id, actions=AUTHORISATION_ACTIONS.values())
        .values("action")
        .annotate(count=Count("id"))
        .order_by()
    }
    return {
        "year": year,
        "agency": agency.slug if agency else None,
        "searches": {"total": started.count(), "by_offense": by_offense, "by_outcome": _by_outcome(started)},
        "watchlist_alerts": _entries(
            year=year, agency_id=agency_id, actions=[AuditEntry.Action.WATCHLIST_ALERT]
        ).count(),
        "authorisations": {key: authorisations.get(action, 0) for key, action in AUTHORISATION_ACTIONS.items()},
        "erasures": _erasures(year=year, agency=agency),
        "certified_users": _certified_users(year=year, agency_id=agency_id),
    }


@db_routing.replica_reads()
def usage_searches_by_month(*, year: int, agency_id: int | None) -> list[int]:
    """Searches started in each month of the year, January first (twelve numbers)."""
    months = [0] * 12
    rows = (
        _searches_started(year=year, agency_id=agency_id)
        .annotate(month=TruncMonth("at"))
        .values("month")
        .annotate(count=Count("id"))
        .order_by()
    )
    for row in rows:
        months[row["month"].month - 1] = row["count"]
    return months


@db_routing.replica_reads()
def usage_years(*, agency_id: int | None) -> list[int]:
    """The years with searches in the scope, newest first, this year always among them."""
    started = AuditEntry.objects.filter(action=AuditEntry.Action.SEARCH_STARTED)
    if agency_id is not None:
        started = started.filter(agency_id=agency_id)
    years = {moment.year for moment in started.datetimes("at", "year")}
    return sorted({y for y in years if YEAR_MIN <= y <= YEAR_MAX} | {timezone.localdate().year}, reverse=True)


def usage_csv_rows(report: dict):
    """The report as CSV rows (section, item, count; header first), every cell neutralised against formulas:
    category names are typed by people."""
    yield ["section", "item", "count"]
    rows = [
        ("report", "year", report["year"]),
        ("report", "agency", report["agency"] or "whole platform"),
        ("searches", "total", report["searches"]["total"]),
        *(("searches by offense", name, count) for name, count in report["searches"]["by_offense"].items()),
        *(("searches by outcome", key, count) for key, count in report["searches"]["by_outcome"].items()),
        ("watch-list", "alerts", report["watchlist_alerts"]),
        *(("authorisations", key, count) for key, count in report["authorisations"].items()),
        ("erasures", "total", report["erasures"]),
        ("users", "certified", report["certified_users"]),
    ]
    for row in rows:
        yield [csv_cell(cell) for cell in row]


# Sizes of the server-drawn charts (the CSP allows no script, nor inline style: SVG attributes and CSS classes).
BAR_HEIGHT, BAR_GAP, BAR_MAX_WIDTH = 22, 8, 190
# Where the bars start: the labels take the room to their left.
BAR_LEFT = 240
COLUMN_WIDTH, COLUMN_GAP, COLUMN_MAX_HEIGHT = 32, 12, 160


def usage_chart_bars(counts: list[tuple[str, str, int]]) -> dict:
    """A horizontal bar per (key, label, count), the longest BAR_MAX_WIDTH wide: the geometry for the SVG."""
    longest = max((count for _, _, count in counts), default=0) or 1
    bars = [
        {
            "key": key,
            "label": label,
            "count": count,
            "y": index * (BAR_HEIGHT + BAR_GAP),
            "text_y": index * (BAR_HEIGHT + BAR_GAP) + 15,
            "width": round(BAR_MAX_WIDTH * count / longest, 1),
            "count_x": round(BAR_LEFT + BAR_MAX_WIDTH * count / longest + 6, 1),
        }
        for index, (key, label, count) in enumerate(counts)
    ]
    height = max(len(bars) * (BAR_HEIGHT + BAR_GAP) - BAR_GAP, 1)
    return {"bars": bars, "left": BAR_LEFT, "bar_height": BAR_HEIGHT, "height": height}


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def usage_chart_months(months: list[int]) -> dict:
    """A column per month, the tallest COLUMN_MAX_HEIGHT high: the geometry for the SVG."""
    tallest = max(months, default=0) or 1
    columns = []
    for index, count in enumerate(months):
        height = round(COLUMN_MAX_HEIGHT * count / tallest, 1)
        x = index * (COLUMN_WIDTH + COLUMN_GAP)
        columns.append(
            {
                "month": MONTHS[index],
                "count": count,
                "x": x,
                "text_x": x + COLUMN_WIDTH / 2,
                "y": 20 + COLUMN_MAX_HEIGHT - height,
                "count_y": 20 + COLUMN_MAX_HEIGHT - height - 4,
                "height": height,
            }
        )
    return {
        "columns": columns,
        "column_width": COLUMN_WIDTH,
        "width": 12 * (COLUMN_WIDTH + COLUMN_GAP) - COLUMN_GAP,
        "label_y": 20 + COLUMN_MAX_HEIGHT + 16,
        "height": 20 + COLUMN_MAX_HEIGHT + 24,
    }
