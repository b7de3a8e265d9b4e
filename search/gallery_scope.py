"""Which galleries an agency may lawfully search: the ones it owns and those shared with it. Every read of
galleries, profiles and faces on an agency's behalf, and every search, starts from here."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from search.models import Gallery


def galleries_searchable_by(*, agency_id: int) -> QuerySet[Gallery]:
    """The galleries an agency owns plus those shared with it."""
    return Gallery.objects.filter(Q(owner_id=agency_id) | Q(shared_with__id=agency_id)).distinct()


def gallery_ids_by_engine(*, agency_id: int) -> dict[str, list[int]]:
    """The galleries an agency may search, grouped by the engine each is searched with."""
    grouped: dict[str, list[int]] = {}
    for gallery_id, engine in galleries_searchable_by(agency_id=agency_id).values_list("id", "engine"):
        grouped.setdefault(engine, []).append(gallery_id)
    return grouped


def gallery_ids_searchable_by(*, agency_id: int, engine: str) -> list[int]:
    return list(galleries_searchable_by(agency_id=agency_id).filter(engine=engine).values_list("id", flat=True))
