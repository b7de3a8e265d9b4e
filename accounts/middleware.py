"""Session rules, checked on every request: idle timeout, absolute lifetime, sessions ended by "sign out
everywhere", a deactivated account and an agency whose licence has ended."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import JsonResponse
from django.utils import timezone

from accounts.services import licence_ended, security_event_record
from portal.client_address import client_address

SIGNED_IN_AT = "signed_in_at"
LAST_ACTIVITY = "last_activity"
GENERATION = "session_generation"


def session_start(request, user) -> None:
    """Mark a new session (called on every sign-in path through Django's user_logged_in signal)."""
    now = timezone.now().timestamp()
    request.session[SIGNED_IN_AT] = now
    request.session[LAST_ACTIVITY] = now
    request.session[GENERATION] = user.session_generation


def session_continue(request, user) -> None:
    """Keep this session alive after the user ended all others (a password change raises the generation)."""
    request.session[GENERATION] = user.session_generation


def passive(view):
    """A view that does not count as activity (status polling), so a page left open still times out."""
    view.passive_request = True
    return view


def _expiry_reason(request) -> str | None:
    session, user = request.session, request.user
    now = timezone.now().timestamp()
    if not user.is_active:
        return "Your account was deactivated by your agency admin."
    if licence_ended(user.agency):
        return (
            f"The licence of {user.agency.name} ended on {user.agency.licence_until:%d %B %Y}. Its data is "
            "kept; sign-in resumes when the licence is renewed."
        )
    if session.get(GENERATION) != user.session_generation:
        return "Your session was ended (signed out everywhere or account changed). Please sign in again."
    if now - session.get(SIGNED_IN_AT, 0) > settings.SESSION_MAX_HOURS * 3600:
        return f"Sessions last at most {settings.SESSION_MAX_HOURS} hours. Please sign in again."
    if now - session.get(LAST_ACTIVITY, 0) > settings.SESSION_IDLE_MINUTES * 60:
        return f"You were signed out after {settings.SESSION_IDLE_MINUTES} minutes without activity."
    return None


class SessionSecurityMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if not request.user.is_authenticated:
            return None
        reason = _expiry_reason(request)
        if reason:
            user = request.user
            logout(request)
            security_event_record(
                action="session_expired", actor=user, detail=reason, ip_address=client_address(request)
            )
            if getattr(view_func, "passive_request", False):
                return JsonResponse({"signed_out": True, "reason": reason}, status=401)
            messages.info(request, reason)
            return redirect_to_login(request.get_full_path())
        if not getattr(view_func, "passive_request", False):
            request.session[LAST_ACTIVITY] = timezone.now().timestamp()
        return None
