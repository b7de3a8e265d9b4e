"""The rules of lawful use that an agency's policy (accounts.AgencyPolicy) sets on its searches.

- A searcher needs a face-search certification valid today, when the policy asks for one.
- A case needs an authorisation from a judicial or administrative authority (EU AI Act art. 26(10)), when the
  policy asks for one. Without a grant, a case may search only inside the urgent window: it starts at the case's
  first search, which opens a request a supervisor answers. A window that ends unanswered stops the searches until
  an answer is recorded; a refusal stops them for good and erases the case's search data (the audit keeps that it
  happened and why). A grant limits the searches to the galleries and offense categories it covers, until it ends.

search/services.py asks here before any search starts (page, command, API and every other path go through it), and
records the authorisation each search ran under; the pipeline searches only the galleries that authorisation covers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db import transaction
from django.utils import timezone

from accounts.models import Role, User
from accounts.selectors import agency_policy, certification_current
from portal.audit import audit_record
from portal.models import AuditEntry, Case, CaseReport
from search.gallery_scope import galleries_searchable_by
from search.models import (
    CaseAuthorisation,
    Gallery,
    OffenseCategory,
    Probe,
    ProbeFace,
    ProbeVideo,
    SearchJob,
    WatchlistEntry,
)
from search.storage import media_available_check, media_delete_on_commit


class UseRefused(ValueError):
    """A search (or a use of a case's search data) that the agency's policy does not allow, with the reason."""


class AuthorisationError(ValueError):
    """An authorisation that cannot be recorded as given; `errors` maps a field to what is wrong with it."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(errors.values()))


def _when(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


# --- Who may search --------------------------------------------------------------------------------------


def searcher_check(user: User, *, on: date | None = None) -> None:
    """Raise UseRefused when the agency asks for a current face-search certification and the user has none."""
    if user.agency_id is None or not agency_policy(agency_id=user.agency_id).certification_required:
        return
    if certification_current(user, on=on):
        return
    if user.search_certified_until is None:
        raise UseRefused(
            "Your agency's policy allows face searches only by certified users, and you have no face-search "
            "certification on record: ask your agency admin to record your training."
        )
    raise UseRefused(
        f"Your face-search certification expired on {user.search_certified_until:%Y-%m-%d}; your agency's policy "
        "allows face searches only by certified users: ask your agency admin to record your renewed training."
    )


# --- Under which authorisation a case may search -------------------------------------------------------------


def case_authorisation_current(case: Case) -> CaseAuthorisation | None:
    """The case's newest authorisation row (a request, a grant or a refusal), or None."""
    return case.authorisations.order_by("-created_at", "-id").first()


@dataclass
class SearchPermit:
    """What a search may run under: its authorisation (None where the policy asks for none, or for the first
    search of a case without one, whose request is opened with the search)."""

    required: bool
    authorisation: CaseAuthorisation | None = None
    opens_request: bool = False
    urgent_hours: int = 0
    gallery_ids: list[int] = field(default_factory=list)


def case_search_check(*, case: Case, category: OffenseCategory | None, now: datetime | None = None) -> SearchPermit:
    """Whether the case may search now for that offense category; raises UseRefused with the reason."""
    policy = agency_policy(agency_id=case.agency_id)
    if not policy.authorisation_required:
        return SearchPermit(required=False)
    now = now or timezone.now()
    current = case_authorisation_current(case)
    if current is None:
        return SearchPermit(required=True, opens_request=True, urgent_hours=policy.urgent_window_hours)
    if current.status == CaseAuthorisation.Status.REFUSED:
        raise UseRefused(
            f"The authorisation for case {case.number} was refused"
            + (f" by {current.authority}" if current.authority else "")
            + (f" ({current.reference})" if current.reference else "")
            + ": no further searches may run on it, and its search data was erased."
        )
    if current.status == CaseAuthorisation.Status.REQUESTED:
        if now >= current.window_ends_at:
            raise UseRefused(
                f"The urgent-use window of case {case.number} ended on {_when(current.window_ends_at)} without an "
                "answer to its authorisation request: no further searches until a supervisor records the "
                "authority's answer."
            )
        return SearchPermit(required=True, authorisation=current)
    if current.expires_at is not None and now >= current.expires_at:
        raise UseRefused(
            f"The authorisation for case {case.number} ({current.reference or current.authority}) expired on "
            f"{_when(current.expires_at)}: no further searches until a supervisor records a renewed one."
        )
    categories = list(current.offense_categories.all())
    if categories and category is not None and category not in categories:
        covered = ", ".join(c.name for c in categories)
        raise UseRefused(
            f"The authorisation for case {case.number} covers searches for {covered} only, not {category.name}."
        )
    return SearchPermit(
        required=True, authorisation=current, gallery_ids=list(current.galleries.values_list("id", flat=True))
    )


def search_permit_use(
    permit: SearchPermit, *, case: Case, user: User, ip_address: str | None = None, now: datetime | None = None
) -> CaseAuthorisation | None:
    """Inside the search's transaction: open the case's request (and its urgent window) on its first search
    without an authorisation; the authorisation the search runs under."""
    if not permit.opens_request:
        return permit.authorisation
    now = now or timezone.now()
    # Two first searches at once open one request: the case row is the lock.
    Case.objects.select_for_update().filter(pk=case.pk).first()
    current = case_authorisation_current(case)
    if current is not None:
        return current
    request = CaseAuthorisation.objects.create(
        agency_id=case.agency_id,
        case=case,
        status=CaseAuthorisation.Status.REQUESTED,
        requested_at=now,
        requested_by=user,
        window_ends_at=now + timedelta(hours=permit.urgent_hours),
        created_at=now,
    )
    audit_record(
        action=AuditEntry.Action.AUTHORISATION_REQUESTED,
        actor=user,
        agency=case.agency,
        case=case,
        target=request,
        ip_address=ip_address,
        detail=(
            f"First search of case {case.number} without an authorisation: urgent use until "
            f"{_when(request.window_ends_at)}; a supervisor records the authority's answer."
        ),
        data={"authorisation": str(request.code), "window_ends_at": request.window_ends_at.isoformat()},
    )
    return request


def authorised_galleries(authorisation: CaseAuthorisation | None, galleries: dict[str, list[int]]):
    """The galleries (per engine) a search may read under its authorisation: all of the agency's where the grant
    names none (or there is no grant), else only the ones it names."""
    if authorisation is None or authorisation.status != CaseAuthorisation.Status.GRANTED:
        return galleries
    allowed = set(authorisation.galleries.values_list("id", flat=True))
    if not allowed:
        return galleries
    restricted = {engine: [g for g in ids if g in allowed] for engine, ids in galleries.items()}
    return {engine: ids for engine, ids in restricted.items() if ids}


def authorisation_words(authorisation: CaseAuthorisation | None) -> str:
    """One line for pages, reports and the audit: what a search ran under."""
    if authorisation is None:
        return "No authorisation required by the agency's policy"
    if authorisation.status == CaseAuthorisation.Status.REQUESTED:
        return f"Urgent use, authorisation requested (window until {_when(authorisation.window_ends_at)})"
    if authorisation.status == CaseAuthorisation.Status.GRANTED:
        words = (
            f"Authorised by {authorisation.authority}, {authorisation.reference}, {authorisation.decided_on:%Y-%m-%d}"
        )
        if authorisation.expires_at:
            words += f", valid through {authorisation.valid_through:%Y-%m-%d}"
        return words
    return f"Authorisation refused by {authorisation.authority or 'the authority'}"


# --- Recording the authority's answer ----------------------------------------------------------------------


def _supervisor_check(user: User, case: Case) -> None:
    if user.agency_id != case.agency_id or user.role != Role.SUPERVISOR:
        raise UseRefused("Only a supervisor of the case's agency records the authority's answer.")


def _answer_fields(authority: str, reference: str, decided_on: date | None, now: datetime) -> dict[str, str]:
    errors = {}
    if not (authority or "").strip():
        errors["authority"] = "Name the judicial or administrative authority that decided."
    if not (reference or "").strip():
        errors["reference"] = "Give the authority's reference for its decision."
    if decided_on is None:
        errors["decided_on"] = "Give the date of the authority's decision."
    elif decided_on > timezone.localdate(now):
        errors["decided_on"] = "The date of the decision cannot be in the future."
    return errors


def _case_answer_locked(case: Case, refused_message: str) -> CaseAuthorisation | None:
    """Inside the answer's transaction: lock the case, and refuse when it was refused already."""
    Case.objects.select_for_update().filter(pk=case.pk).first()
    current = case_authorisation_current(case)
    if current is not None and current.status == CaseAuthorisation.Status.REFUSED:
        raise UseRefused(refused_message)
    return current


def _answer_store(case: Case, current: CaseAuthorisation | None, fields: dict, now: datetime) -> CaseAuthorisation:
    """The answer to the case's open request (the row is updated), or a row of its own."""
    if current is not None and current.status == CaseAuthorisation.Status.REQUESTED:
        for name, value in fields.items():
            setattr(current, name, value)
        current.save()
        return current
    return CaseAuthorisation.objects.create(agency_id=case.agency_id, case=case, created_at=now, **fields)


def authorisation_grant(
    *,
    case: Case,
    user: User,
    authority: str,
    reference: str,
    decided_on: date | None,
    expires_at: datetime | None = None,
    gallery_ids: list[int] | None = None,
    category_ids: list[int] | None = None,
    ip_address: str | None = None,
    now: datetime | None = None,
) -> CaseAuthorisation:
    """Record a grant: the answer to the case's open request, a grant recorded beforehand, or a renewal after an
    expired grant or a lapsed window. Raises UseRefused (who, a refused case) or AuthorisationError (the fields)."""
    now = now or timezone.now()
    _supervisor_check(user, case)
    errors = _answer_fields(authority, reference, decided_on, now)
    if expires_at is not None and expires_at <= now:
        errors["expires_at"] = "The end of the authorisation must be in the future."
    searchable = set(galleries_searchable_by(agency_id=case.agency_id).values_list("id", flat=True))
    gallery_ids = sorted(set(gallery_ids or []))
    if any(g not in searchable for g in gallery_ids):
        errors["galleries"] = "Choose among the galleries your agency may search."
    category_ids = sorted(set(category_ids or []))
    if len(category_ids) != OffenseCategory.objects.filter(id__in=category_ids).count():
        errors["offense_categories"] = "Choose among the offense categories."
    if errors:
        raise AuthorisationError(errors)
    with transaction.atomic():
        current = _case_answer_locked(
            case, f"The authorisation for case {case.number} was refused: its searches have ended."
        )
        answers_request = current is not None and current.status == CaseAuthorisation.Status.REQUESTED
        fields = {
            "status": CaseAuthorisation.Status.GRANTED,
            "authority": authority.strip()[:200],
            "reference": reference.strip()[:200],
            "decided_on": decided_on,
            "expires_at": expires_at,
            "recorded_by": user,
            "recorded_at": now,
        }
        grant = _answer_store(case, current, fields, now)
        grant.galleries.set(gallery_ids)
        grant.offense_categories.set(category_ids)
        scope_galleries = list(Gallery.objects.filter(id__in=gallery_ids).values_list("name", flat=True))
        scope_categories = list(OffenseCategory.objects.filter(id__in=category_ids).values_list("name", flat=True))
        audit_record(
            action=AuditEntry.Action.AUTHORISATION_GRANTED,
            actor=user,
            agency=case.agency,
            case=case,
            target=grant,
            ip_address=ip_address,
            detail=authorisation_words(grant),
            data={
                "authorisation": str(grant.code),
                "authority": grant.authority,
                "reference": grant.reference,
                "decided_on": decided_on.isoformat(),
                "expires_at": expires_at.isoformat() if expires_at else None,
                "galleries": scope_galleries or "all the agency may search",
                "offense_categories": scope_categories or "all",
                "answers_request": answers_request,
            },
        )
    return grant


def authorisation_refuse(
    *,
    case: Case,
    user: User,
    authority: str,
    reference: str,
    decided_on: date | None,
    reason: str,
    ip_address: str | None = None,
    now: datetime | None = None,
) -> dict:
    """Record a refusal: the case's searches stop for good and their data is erased; the counts erased."""
    now = now or timezone.now()
    _supervisor_check(user, case)
    errors = _answer_fields(authority, reference, decided_on, now)
    if len((reason or "").strip()) < 10:
        errors["refusal_reason"] = "Say, in a sentence, what the authority decided and why."
    if errors:
        raise AuthorisationError(errors)
    with transaction.atomic():
        current = _case_answer_locked(case, f"The authorisation for case {case.number} was already refused.")
        fields = {
            "status": CaseAuthorisation.Status.REFUSED,
            "authority": authority.strip()[:200],
            "reference": reference.strip()[:200],
            "decided_on": decided_on,
            "refusal_reason": reason.strip(),
            "recorded_by": user,
            "recorded_at": now,
        }
        refusal = _answer_store(case, current, fields, now)
        audit_record(
            action=AuditEntry.Action.AUTHORISATION_REFUSED,
            actor=user,
            agency=case.agency,
            case=case,
            target=refusal,
            ip_address=ip_address,
            detail=f"Refused by {refusal.authority} ({refusal.reference}): {refusal.refusal_reason}"[:300],
            data={
                "authorisation": str(refusal.code),
                "authority": refusal.authority,
                "reference": refusal.reference,
                "decided_on": decided_on.isoformat(),
                "reason": refusal.refusal_reason,
            },
        )
        erased = case_search_data_erase(
            case=case, actor=user, reason=f"authorisation refused by {refusal.authority} ({refusal.reference})"
        )
    return erased


def case_search_data_erase(*, case: Case, actor: User | None, reason: str) -> dict:
    """Delete every probe, crop, video, search result and report file of the case, in the caller's transaction
    (the files go after it commits); the audit entry keeps what was erased and why. The counts erased."""
    media_available_check()  # an outage refuses the erasure: it never leaves the case's photos in the store
    probes = Probe.objects.filter(case=case)
    jobs = SearchJob.objects.filter(probe__case=case)
    videos = ProbeVideo.objects.filter(case=case)
    reports = CaseReport.objects.filter(case=case)
    files = [n for p in probes for n in (p.image.name, p.prepared_image.name) if n]
    files += [f.crop.name for f in ProbeFace.objects.filter(probe__case=case) if f.crop]
    files += [v.file.name for v in videos if v.file]
    files += [still["image"] for v in videos for still in v.stills if still.get("image")]
    files += [r.file.name for r in reports if r.file]
    counts = {
        "probes": probes.count(),
        "searches": jobs.count(),
        "candidates": sum(job.candidates.count() for job in jobs),
        "videos": videos.count(),
        "reports": reports.count(),
        "watchlist_entries": WatchlistEntry.objects.filter(case=case).count(),
        "files": len(files),
    }
    job_codes = [str(code) for code in jobs.values_list("code", flat=True)]
    # The rows that hang on the probes (faces, candidates, reviews, comparisons, evidence, watch-list entries and
    # their alerts) go with them (on_delete CASCADE).
    jobs.delete()
    probes.delete()
    videos.delete()
    reports.delete()
    audit_record(
        action=AuditEntry.Action.CASE_SEARCH_DATA_ERASED,
        actor=actor,
        agency=case.agency,
        case=case,
        target=case,
        detail=(
            f"Search data of case {case.number} erased ({reason}): {counts['searches']} searches, "
            f"{counts['probes']} probes, {counts['videos']} videos, {counts['reports']} reports, "
            f"{counts['files']} files"
        )[:300],
        data=counts | {"reason": reason, "jobs": job_codes},
    )
    media_delete_on_commit(*files)
    return counts
