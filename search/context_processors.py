"""Template context every page's header needs."""

from __future__ import annotations

from django.utils.functional import SimpleLazyObject

from accounts.models import Role
from search import selectors, watchlist


def review_queue(request) -> dict:
    """For a signed-in supervisor, the number of proposals waiting in their agency ("Reviews (N)")."""
    user = getattr(request, "user", None)
    if (
        user is None
        or not user.is_authenticated
        or user.role != Role.SUPERVISOR
        or user.agency_id is None
        or not getattr(user, "is_verified", lambda: False)()
    ):
        return {}
    # Lazy: partials rendered for polling never show the header, so they never pay the COUNT.
    return {"reviews_waiting": SimpleLazyObject(lambda: selectors.lead_reviews_waiting_count(user=user))}


def watchlist_alerts(request) -> dict:
    """For a signed-in officer or supervisor, the unseen watch-list alerts of their cases ("Alerts (N)")."""
    user = getattr(request, "user", None)
    if (
        user is None
        or not user.is_authenticated
        or user.role not in (Role.OFFICER, Role.SUPERVISOR)
        or user.agency_id is None
        or not getattr(user, "is_verified", lambda: False)()
    ):
        return {}
    return {"watchlist_alerts_unseen": SimpleLazyObject(lambda: watchlist.watchlist_alerts_unseen_count(user=user))}
