"""Plain factory functions for the records most tests need, made through the product's own services so
that every rule (seats, provenance, the audit) holds in tests as it does in use."""

from __future__ import annotations

from accounts.models import Agency, Role, User
from accounts.services import agency_create, user_create
from portal.models import Case
from portal.services import case_create
from search import comparison, pipeline
from search.enrolment import EnrolmentItem, gallery_enrol_batch, gallery_get_or_create
from search.models import Gallery, SearchJob
from search.services import probe_submit

PASSWORD = "a-long-test-password-1"
# What a new gallery must state besides its legal basis.
GALLERY_PROVENANCE = {"source_type": "booking", "responsible_person": "Records officer", "retention_days": 3650}


def agency_make(slug: str, *, name: str | None = None, seats: int = 5) -> Agency:
    return agency_create(slug=slug, name=name or f"{slug.title()} Police", seats=seats)


def user_make(username: str, *, agency: Agency | None = None, role: str = Role.OFFICER) -> User:
    """An agency user (officer by default) or, without an agency, a platform user of that role."""
    return user_create(username=username, password=PASSWORD, role=role, agency=agency)


def case_make(*, created_by: User, number: str = "N-001", title: str = "Robbery at the station") -> Case:
    return case_create(created_by=created_by, number=number, title=title)


def gallery_make(
    *,
    owner: Agency,
    name: str = "Bookings",
    people: dict[str, list[str]] | None = None,
    legal_basis: str = "Police Act s.64",
    **provenance,
) -> Gallery:
    """A gallery with its provenance, and, for each person named, their photos (paths) enrolled."""
    gallery, created = gallery_get_or_create(
        owner=owner, name=name, legal_basis=legal_basis, **(GALLERY_PROVENANCE | provenance)
    )
    items = [EnrolmentItem(path=str(path), display_name=who) for who, paths in (people or {}).items() for path in paths]
    if items:
        gallery_enrol_batch(gallery=gallery, gallery_created=created, items=items)
    return gallery


def job_make(*, case: Case, uploaded_by: User, data: bytes, run: bool = True, **options) -> SearchJob:
    """A search of a probe photo in the case, run here in-process unless `run` is false (then it stays queued)."""
    job = probe_submit(case=case, uploaded_by=uploaded_by, data=data, **options)
    if run:
        pipeline.search_job_run(job_id=job.id)
        job.refresh_from_db()
    return job


def comparison_entry(
    conclusion: str = "supports", value: str = "similar", notes: str = ""
) -> comparison.ComparisonEntry:
    """A complete comparison record: every FISWG feature given `value`, and the conclusion."""
    return comparison.ComparisonEntry(
        features={key: value for key, _ in comparison.FEATURES}, conclusion=conclusion, notes=notes
    )
