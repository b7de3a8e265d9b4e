"""Who may use the investigator pages: users of an agency, signed in with both factors."""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.shortcuts import redirect, render


def verified_required(view):
    """Signed in with password and second factor, whatever the role: every view that changes state needs
    both factors (the password step alone reaches only the second-factor pages and sign-out)."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_verified():
            return redirect("accounts:second-factor")
        return view(request, *args, **kwargs)

    return wrapper


def agency_member_required(view):
    """Signed in with password and second factor, and a member of an agency (platform accounts run the
    deployment; they do not search)."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_verified():
            return redirect("accounts:second-factor")
        if request.user.agency_id is None:
            return render(request, "portal/not_for_platform.html", status=403)
        return view(request, *args, **kwargs)

    return wrapper
