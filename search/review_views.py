"""The review queue: proposals of possible leads waiting for a supervisor, and each user's own proposals.

No decision is taken here: the queue's buttons post to search:lead-decide, and search/leads.py holds the
rules (a supervisor, not the proposer, their own record first, a reason to reject). Verification is blind:
a row shows who proposed and when, but the proposal's note and conclusion only to those who may see them
(search/comparison.py), so a supervisor who has not recorded theirs is sent to the comparison instead.
"""

from __future__ import annotations

from django.shortcuts import render
from django.views.decorators.http import require_safe

from accounts.models import Role
from portal.access import agency_member_required, supervisor_required
from search import comparison, selectors


def _render_rows(request, template: str, rows: list, **context):
    shown = comparison.records_shown_for(user=request.user, reviews=[row.review for row in rows])
    return render(request, template, {"rows": rows, "shown": shown, **context})


@require_safe
@supervisor_required
def review_queue(request):
    return _render_rows(
        request,
        "search/review_queue.html",
        selectors.lead_reviews_waiting(user=request.user),
        # Agency admins may look at the queue; only a supervisor decides (search/leads.lead_decide).
        may_decide=request.user.role == Role.SUPERVISOR,
    )


@require_safe
@agency_member_required
def review_mine(request):
    return _render_rows(request, "search/review_mine.html", selectors.lead_reviews_proposed_by(user=request.user))
