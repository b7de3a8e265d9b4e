"""Who may use the investigator pages: signed-in users of an agency."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.shortcuts import render


def agency_member_required(view):
    """Signed in, and a member of an agency (platform accounts run the deployment; they do not search)."""

    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.user.agency_id is None:
            return render(request, "portal/not_for_platform.html", status=403)
        return view(request, *args, **kwargs)

    return wrapper
