"""Sign-in with a second factor, sign-out, and the agency admin's seat page."""

from __future__ import annotations

import io

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate, login, logout, update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.core.mail import send_mail
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticDevice

from accounts import selectors, services, tokens
from accounts.forms import (
    AcceptInvitationForm,
    CertificationForm,
    InvitationForm,
    PasswordChangeForm,
    RoleForm,
    SecondFactorForm,
    SignInForm,
)
from accounts.middleware import session_continue
from accounts.models import User
from portal.access import (
    SIGN_IN_NEXT_KEY,
    agency_admin_required,
    password_verified_required,
    private,
    safe_next,
    verified_required,
)
from portal.client_address import client_address
from portal.models import AuditEntry

NEXT_KEY = SIGN_IN_NEXT_KEY


def _signed_in(request, device) -> None:
    """Both factors passed: mark the session verified under a new key (the password step got its own)."""
    otp_login(request, device)
    request.session.cycle_key()


def _locked_message(until) -> str:
    return (
        f"Too many failed sign-ins. Sign-in is locked until {timezone.localtime(until):%H:%M}, "
        "or until your agency admin unlocks your account."
    )


def _record_failure(request, action: str, username: str, user: User | None = None) -> str | None:
    """Record a failed attempt; the lockout message if this attempt locked the account or address."""
    services.security_event_record(
        action=action,
        actor=user,
        username=username,
        ip_address=client_address(request),
        agency=user.agency if user else None,
    )
    until = services.sign_in_locked_until(username=username, ip_address=client_address(request))
    if until:
        services.security_event_record(
            action=AuditEntry.Action.LOCKED_OUT,
            actor=user,
            username=username,
            ip_address=client_address(request),
            agency=user.agency if user else None,
        )
        return _locked_message(until)
    return None


@require_http_methods(["GET", "HEAD", "POST"])
def sign_in(request):
    if request.user.is_authenticated and request.user.is_verified():
        return redirect("portal:dashboard")
    form = SignInForm(request.POST or None)
    error = None
    if request.method == "POST" and _sign_ins_rate_limited(request):
        return render(
            request,
            "accounts/login.html",
            {
                "form": form,
                "next": request.GET.get("next", ""),
                "error": "Too many sign-in attempts from your address. Wait a minute and try again.",
            },
            status=429,
        )
    if request.method == "POST" and form.is_valid():
        username = form.cleaned_data["username"]
        until = services.sign_in_locked_until(username=username, ip_address=client_address(request))
        user = None if until else authenticate(request, username=username, password=form.cleaned_data["password"])
        if until:
            error = _locked_message(until)
        elif user is None:
            error = (
                _record_failure(request, AuditEntry.Action.SIGN_IN_FAILED, username)
                or "The username or password is not right. Both are case-sensitive."
            )
        elif services.licence_ended(user.agency):
            services.security_event_record(
                action=AuditEntry.Action.SIGN_IN_FAILED,
                actor=user,
                ip_address=client_address(request),
                detail="licence ended",
            )
            error = (
                f"The licence of {user.agency.name} ended on {user.agency.licence_until:%d %B %Y}. Its data "
                "is kept; sign-in resumes when the licence is renewed."
            )
        else:
            next_url = safe_next(request, request.POST.get("next") or request.GET.get("next"))
            login(request, user)  # a new session id
            request.session[NEXT_KEY] = next_url
            has_device = selectors.user_has_confirmed_totp(user=user)
            return redirect("accounts:second-factor" if has_device else "accounts:enrol")
    return render(
        request,
        "accounts/login.html",
        {"form": form, "error": error, "next": request.GET.get("next", "")},
        status=400 if error else 200,
    )


def _sign_ins_rate_limited(request) -> bool:
    from django.conf import settings

    attempts = [
        AuditEntry.Action.SIGN_IN,
        AuditEntry.Action.SIGN_IN_FAILED,
        AuditEntry.Action.SECOND_FACTOR_FAILED,
        AuditEntry.Action.LOCKED_OUT,
    ]
    if not services.rate_limited(
        ip_address=client_address(request), actions=attempts, per_minute=settings.SIGN_INS_PER_MINUTE
    ):
        return False
    services.security_event_record(
        action=AuditEntry.Action.RATE_LIMITED,
        ip_address=client_address(request),
        detail=f"sign-in: {request.POST.get('username', '')[:100]}",
    )
    return True


@require_http_methods(["GET", "HEAD", "POST"])
@password_verified_required
def second_factor(request):
    user = request.user
    if not selectors.user_has_confirmed_totp(user=user):
        return redirect("accounts:enrol")
    form = SecondFactorForm(request.POST or None)
    error = None
    if request.method == "POST" and form.is_valid():
        until = services.sign_in_locked_until(username=user.username, ip_address=client_address(request))
        device = None if until else selectors.user_device_matching_code(user=user, code=form.cleaned_data["code"])
        if until:
            error = _locked_message(until)
        elif device is None:
            error = (
                _record_failure(request, AuditEntry.Action.SECOND_FACTOR_FAILED, user.username, user)
                or "That code is not right, or was already used. Codes change every 30 seconds."
            )
        else:
            _signed_in(request, device)
            services.security_event_record(
                action=AuditEntry.Action.SIGN_IN,
                actor=user,
                ip_address=client_address(request),
                detail="backup code" if isinstance(device, StaticDevice) else "TOTP",
            )
            return HttpResponseRedirect(safe_next(request, request.session.pop(NEXT_KEY, "/")))
    return render(request, "accounts/second_factor.html", {"form": form, "error": error}, status=400 if error else 200)


@require_http_methods(["GET", "HEAD", "POST"])
@password_verified_required
def enrol(request):
    user = request.user
    if selectors.user_has_confirmed_totp(user=user):
        return redirect("accounts:second-factor")
    device = selectors.user_unconfirmed_totp(user=user) or services.totp_device_create(user=user, confirmed=False)
    form = SecondFactorForm(request.POST or None)
    error = None
    if request.method == "POST" and form.is_valid():
        # The lockout holds here too: this is the second step of an invitation's sign-in.
        until = services.sign_in_locked_until(username=user.username, ip_address=client_address(request))
        codes = (
            None if until else services.second_factor_enrolment_confirm(device=device, token=form.cleaned_data["code"])
        )
        if until:
            error = _locked_message(until)
        elif codes is None:
            error = (
                _record_failure(request, AuditEntry.Action.SECOND_FACTOR_FAILED, user.username, user)
                or "That code is not right. Check the time on your phone and try the next code."
            )
        else:
            device.refresh_from_db()
            _signed_in(request, device)
            services.security_event_record(
                action=AuditEntry.Action.SIGN_IN,
                actor=user,
                ip_address=client_address(request),
                detail="TOTP (enrolment)",
            )
            return render(
                request,
                "accounts/backup_codes.html",
                {"codes": codes, "next": safe_next(request, request.session.pop(NEXT_KEY, "/"))},
            )
    return render(
        request,
        "accounts/enrol.html",
        {"form": form, "error": error, "secret": services.totp_secret_base32(device)},
        status=400 if error else 200,
    )


@require_safe
@password_verified_required
def enrol_qr(request):
    device = selectors.user_unconfirmed_totp(user=request.user)
    if device is None:
        return redirect("accounts:enrol")
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage, box_size=12)
    buffer = io.BytesIO()
    image.save(buffer)
    return private(HttpResponse(buffer.getvalue(), content_type="image/svg+xml"))


@require_POST
def sign_out(request):
    if request.user.is_authenticated:
        services.security_event_record(
            action=AuditEntry.Action.SIGN_OUT, actor=request.user, ip_address=client_address(request)
        )
    logout(request)
    messages.info(request, "You are signed out.")
    return redirect("accounts:login")


@verified_required
@require_POST
def sign_out_everywhere(request):
    services.user_sign_out_everywhere(user=request.user, ip_address=client_address(request))
    logout(request)
    messages.info(request, "Every session of your account has ended.")
    return redirect("accounts:login")


@verified_required
@require_http_methods(["GET", "HEAD", "POST"])
def password_change(request):
    """Everyone changes their own password here, with both factors; the admin has no password page."""
    user = request.user
    form = PasswordChangeForm(request.POST or None)
    error = None
    if request.method == "POST" and form.is_valid():
        until = services.sign_in_locked_until(username=user.username, ip_address=client_address(request))
        if until:
            error = _locked_message(until)
        elif not user.check_password(form.cleaned_data["current_password"]):
            error = (
                _record_failure(request, AuditEntry.Action.SIGN_IN_FAILED, user.username, user)
                or "Your current password is not right."
            )
        elif selectors.user_device_matching_code(user=user, code=form.cleaned_data["code"]) is None:
            error = (
                _record_failure(request, AuditEntry.Action.SECOND_FACTOR_FAILED, user.username, user)
                or "That code is not right, or was already used."
            )
        else:
            try:
                user = services.user_password_change(
                    user=user, new_password=form.cleaned_data["new_password"], ip_address=client_address(request)
                )
            except services.AccountError as exc:
                form.add_error("new_password", str(exc))
            else:
                # This session goes on under a new key; every other session of the account has ended.
                update_session_auth_hash(request, user)
                session_continue(request, user)
                messages.success(request, "Your password is changed. Every other session of your account ended.")
                return redirect("portal:dashboard" if user.agency_id else "accounts:password-change")
    return render(
        request,
        "accounts/password_change.html",
        {"form": form, "error": error},
        status=400 if error or form.errors else 200,
    )


# --- Seats (agency admin) ---------------------------------------------------------------------


@require_safe
@agency_admin_required
def seats(request):
    return _seats_page(request)


def _seats_page(request, invite_form: InvitationForm | None = None):
    agency = request.user.agency
    users = list(selectors.agency_users(agency_id=agency.id))
    for member in users:
        member.locked_until = services.sign_in_locked_until(username=member.username, ip_address=None)
    return render(
        request,
        "accounts/seats.html",
        {
            "agency": agency,
            "users": users,
            "seats_used": services.seats_used(agency),
            "roles": RoleForm().fields["role"].choices,
            "invitations": selectors.pending_invitations(agency_id=agency.id),
            "invite_form": invite_form or InvitationForm(),
            "api_tokens": tokens.agency_api_tokens(admin=request.user),
            "policy": selectors.agency_policy(agency_id=agency.id),
            "today": timezone.localdate(),
        },
        status=400 if invite_form else 200,
    )


@agency_admin_required
@require_POST
def invitation_send(request):
    form = InvitationForm(request.POST)
    if form.is_valid():
        try:
            invitation, token = services.invitation_create(
                actor=request.user, ip_address=client_address(request), **form.cleaned_data
            )
        except services.AccountError as exc:
            form.add_error("email", str(exc))
        else:
            link = request.build_absolute_uri(reverse("accounts:invitation-accept", args=[token]))
            send_mail(
                subject=f"Your invitation to the face search portal of {invitation.agency.name}",
                message=(
                    f"{request.user.username} invites you to join {invitation.agency.name} as "
                    f"{invitation.get_role_display().lower()}.\n\nOpen this link within "
                    f"{int((invitation.expires_at - invitation.created_at).total_seconds() // 3600)} hours "
                    f"to choose a password and set up your second factor:\n{link}\n\nThe link works once."
                ),
                from_email=None,
                recipient_list=[invitation.email],
            )
            messages.success(
                request, f"Invitation sent to {invitation.email}; it holds a seat until it is used or expires."
            )
            return redirect("accounts:seats")
    return _seats_page(request, form)


@agency_admin_required
@require_POST
def invitation_revoke(request, code):
    invitation = selectors.invitation_get(actor=request.user, code=code)
    services.invitation_revoke(actor=request.user, invitation=invitation, ip_address=client_address(request))
    messages.success(request, f"The invitation of {invitation.email} is withdrawn; its seat is free.")
    return redirect("accounts:seats")


@require_http_methods(["GET", "HEAD", "POST"])
def invitation_accept(request, token):
    try:
        invitation = services.invitation_for_token(token)
    except services.AccountError as exc:
        return render(request, "accounts/invitation_invalid.html", {"reason": str(exc)}, status=410)
    form = AcceptInvitationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.invitation_accept(
                token=token,
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password"],
                ip_address=client_address(request),
            )
        except services.AccountError as exc:
            form.add_error("password" if "password" in str(exc).lower() else "username", str(exc))
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            request.session[NEXT_KEY] = "/"
            return redirect("accounts:enrol")
    return render(
        request,
        "accounts/invitation_accept.html",
        {"form": form, "invitation": invitation},
        status=400 if form.errors else 200,
    )


def _seat_action(request, code, action):
    member = selectors.agency_user_get(actor=request.user, code=code)
    try:
        action(member)
    except services.AccountError as exc:
        messages.error(request, str(exc))
    return redirect("accounts:seats")


def _seat_view(service, done: str):
    """A seat page action on one user of the admin's agency: call the service, say what happened."""

    @agency_admin_required
    @require_POST
    def view(request, code):
        def act(member):
            service(actor=request.user, user=member, ip_address=client_address(request))
            messages.success(request, done.format(username=member.username))

        return _seat_action(request, code, act)

    return view


user_deactivate = _seat_view(
    services.user_deactivate, "{username} is deactivated; their seat is free and their history kept."
)
user_reactivate = _seat_view(services.user_reactivate, "{username} is active again.")
user_unlock = _seat_view(services.sign_in_unlock, "{username} can sign in again.")


@agency_admin_required
@require_POST
def user_role(request, code):
    form = RoleForm(request.POST)

    def act(member):
        if not form.is_valid():
            raise services.AccountError("Choose a role.")
        updated = services.user_change_role(
            actor=request.user, user=member, role=form.cleaned_data["role"], ip_address=client_address(request)
        )
        messages.success(request, f"{updated.username} is now {updated.get_role_display().lower()}.")

    return _seat_action(request, code, act)


@agency_admin_required
@require_POST
def user_certification(request, code):
    form = CertificationForm(request.POST)

    def act(member):
        if not form.is_valid():
            raise services.AccountError("Give the dates as YYYY-MM-DD.")
        updated = services.user_certification_set(
            actor=request.user,
            user=member,
            trained_on=form.cleaned_data["trained_on"],
            certified_until=form.cleaned_data["valid_until"],
            ip_address=client_address(request),
        )
        if updated.search_certified_until:
            messages.success(
                request,
                f"{updated.username}'s face-search certification is recorded, valid until "
                f"{updated.search_certified_until:%d %b %Y}.",
            )
        else:
            messages.success(request, f"{updated.username} has no face-search certification on record now.")

    return _seat_action(request, code, act)


# --- Password reset (the second factor is still asked at the next sign-in) ----------------------


class PasswordResetView(auth_views.PasswordResetView):
    http_method_names = ["get", "head", "post"]  # FormView would take PUT as a POST
    template_name = "accounts/password_reset_form.html"
    email_template_name = "accounts/password_reset_email.txt"
    subject_template_name = "accounts/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password-reset-done")

    def post(self, request, *args, **kwargs):
        from django.conf import settings

        if services.rate_limited(
            ip_address=client_address(request),
            per_minute=settings.PUBLIC_REQUESTS_PER_MINUTE,
            actions=[AuditEntry.Action.PASSWORD_RESET_REQUESTED],
        ):
            form = self.get_form()
            form.is_valid()
            form.add_error(None, "Too many requests from your address. Wait a minute and try again.")
            return self.render_to_response(self.get_context_data(form=form), status=429)
        # Recorded whether or not the address has an account; the page never says which.
        services.security_event_record(
            action=AuditEntry.Action.PASSWORD_RESET_REQUESTED,
            ip_address=client_address(request),
            detail=request.POST.get("email", "")[:200],
        )
        return super().post(request, *args, **kwargs)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    http_method_names = ["get", "head", "post"]

    def dispatch(self, *args, **kwargs):
        # Django's view moves the link's token into the session before looking at the method.
        if self.request.method.lower() not in self.http_method_names:
            return self.http_method_not_allowed(self.request, *args, **kwargs)
        return super().dispatch(*args, **kwargs)

    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password-reset-complete")
    post_reset_login = False  # the new password alone never signs in: the second factor follows

    def form_valid(self, form):
        response = super().form_valid(form)
        services.user_sign_out_everywhere(user=form.user, ip_address=client_address(self.request))
        services.security_event_record(
            action=AuditEntry.Action.PASSWORD_RESET, actor=form.user, ip_address=client_address(self.request)
        )
        return response


# --- API tokens ---------------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@verified_required  # both factors: a token stands for them
def token_list(request):
    """The user's API tokens with their last use; a new one is shown once, on this answer only."""
    made, error = None, ""
    if request.method == "POST":
        days = request.POST.get("days", "").strip()
        try:
            made = tokens.api_token_create(
                user=request.user,
                name=request.POST.get("name", ""),
                days=int(days) if days else None,
                ip_address=client_address(request),
            )
        except ValueError as exc:  # TokenError, or days that are not a number
            error = str(exc) if isinstance(exc, tokens.TokenError) else "Give the days as a whole number."
    response = render(
        request,
        "accounts/tokens.html",
        {
            "tokens": tokens.api_tokens_of(user=request.user),
            "made": made,
            "error": error,
            "now": timezone.now(),
            "default_days": settings.API_TOKEN_DEFAULT_DAYS,
            "max_days": settings.API_TOKEN_MAX_DAYS,
            "posted": request.POST if error else {},
        },
        status=400 if error else 200,
    )
    return private(response)


@require_POST
@verified_required
def token_revoke(request, code):
    """Revoke a token: its owner, or the agency admin of its owner (from the seats page)."""
    try:
        api_token = tokens.api_token_get(user=request.user, code=code)
    except tokens.TokenError:
        raise Http404("No such token")
    tokens.api_token_revoke(actor=request.user, api_token=api_token, ip_address=client_address(request))
    messages.success(request, f"Token “{api_token.name}” of {api_token.user.username} revoked.")
    if api_token.user_id != request.user.id:
        return redirect("accounts:seats")
    return redirect("accounts:tokens")
