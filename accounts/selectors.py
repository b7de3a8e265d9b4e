"""Reads for agencies and users."""

from accounts.models import Agency


def agency_get_by_slug(slug: str) -> Agency | None:
    return Agency.objects.filter(slug=slug).first()
