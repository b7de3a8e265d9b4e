"""The review queue: proposals of possible leads waiting for a supervisor, and each user's own proposals.

No decision is taken here: the queue's buttons post to search:lead-decide, and search/leads.py holds the
rules (a supervisor, not the proposer, a reason to reject).
"""

from __future__ import annotations

from django.shortcuts import render
from django.views.decorators.http import require_safe

from accounts.models import Role
from portal.access import agency_member_required, supervisor_required
from search import selectors


@require_safe
@supervisor_required
def review_queue(request):
    return render(
        request,
        "search/review_queue.html",
        {
            "rows": selectors.lead_reviews_waiting(user=request.user),
            # Agency admins may look at the queue; only a supervisor decides (search/leads.lead_decide).
            "may_decide": request.user.role == Role.SUPERVISOR,
        },
    )


@require_safe
@agency_member_required
def review_mine(request):
    return render(request, "search/review_mine.html", {"rows": selectors.lead_reviews_proposed_by(user=request.user)})
