"""Who may use a page, in one place: every view's access rule is one of these decorators, and every
response that carries personal data is marked by `private`.

All rules need the password and the second factor, except `password_verified_required`, which guards
the second-factor pages themselves.
"""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import FileResponse, Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme

from accounts.models import Role

# Where the sign-in keeps the page to return to between its two steps.
SIGN_IN_NEXT_KEY = "sign_in_next"


def private(response: HttpResponse) -> HttpResponse:
    """Mark a response that carries personal data: never cached, never sniffed as another type."""
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def safe_next(request, candidate: str | None) -> str:
    """A local path of this portal, or "/": never another host, a scheme, or a bare word (which the redirect
    shortcut would take for a view name)."""
    candidate = (candidate or "").strip()
    if (
        candidate.startswith("/")
        and not candidate.startswith(("//", "/\\"))
        and url_has_allowed_host_and_scheme(
            candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )
    ):
        return candidate
    return "/"


def _verified_or_redirect(request):
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not request.user.is_verified():
        return redirect("accounts:second-factor")
    return None


def verified_required(view):
    """Signed in with password and second factor, whatever the role: every view that changes state needs
    both factors (the password step alone reaches only the second-factor pages and sign-out)."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        return _verified_or_redirect(request) or view(request, *args, **kwargs)

    return wrapper


def _role_required(*roles, agency_member: bool):
    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            refused = _verified_or_redirect(request)
            if refused:
                return refused
            if agency_member and request.user.agency_id is None:
                # Platform accounts run the deployment; they do not search.
                return render(request, "portal/not_for_platform.html", status=403)
            if roles and request.user.role not in roles:
                return render(request, "403.html", status=403)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


# Users of an agency, signed in with both factors.
agency_member_required = _role_required(agency_member=True)
# The agency's supervisors and admins: the audit pages.
supervisor_required = _role_required(Role.SUPERVISOR, Role.AGENCY_ADMIN, agency_member=True)
# The agency admin: seats and galleries.
agency_admin_required = _role_required(Role.AGENCY_ADMIN, agency_member=True)
# The yearly usage report: an agency admin (their own agency) and platform staff (any agency, the platform).
usage_report_required = _role_required(Role.AGENCY_ADMIN, Role.PLATFORM_STAFF, agency_member=False)
# The platform's privacy officer: data-subject requests.
privacy_officer_required = _role_required(Role.PRIVACY_OFFICER, agency_member=False)


def password_verified_required(view):
    """Signed in with the password, second factor still to come (the second-factor pages)."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect("accounts:login")
        if request.user.is_verified():
            return HttpResponseRedirect(safe_next(request, request.session.get(SIGN_IN_NEXT_KEY)))
        return view(request, *args, **kwargs)

    return wrapper


def audit_view(request, action: str, *, case, target, data: dict | None = None) -> None:
    """An audit entry for a page that showed biometric data (results, a comparison, a profile)."""
    from portal.audit import audit_record
    from portal.client_address import client_address

    audit_record(
        action=action, actor=request.user, case=case, target=target, data=data or {}, ip_address=client_address(request)
    )


def image_response(field) -> FileResponse:
    """A stored image, streamed privately (never cached, never a public URL); 404 when it is not held."""
    if not field or not field.name:
        raise Http404("No image")
    try:
        handle = field.open("rb")
    except FileNotFoundError:
        raise Http404("Image missing") from None
    response = FileResponse(handle, content_type="image/jpeg")
    response["Content-Disposition"] = "inline"
    return private(response)


def jpeg_response(data: bytes) -> HttpResponse:
    """JPEG bytes made for this request (an annotated photo, a thumbnail), served like image_response."""
    response = HttpResponse(data, content_type="image/jpeg")
    response["Content-Disposition"] = "inline"
    return private(response)
