"""Reads for agencies and users, scoped to the agency."""

from __future__ import annotations

from datetime import date

from django.db.models import Count, Q, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Agency, AgencyPolicy, Invitation, User


def agency_get_by_slug(slug: str) -> Agency | None:
    return Agency.objects.filter(slug=slug).first()


def agency_users(*, agency_id: int) -> QuerySet[User]:
    """The agency's users with their searches this month, active first."""
    month_start = timezone.localdate().replace(day=1)
    return (
        User.objects.filter(agency_id=agency_id)
        .annotate(
            searches_this_month=Count(
                "search_jobs_started", filter=Q(search_jobs_started__created_at__date__gte=month_start)
            )
        )
        .order_by("-is_active", "username")
    )


def agency_user_get(*, actor: User, code) -> User:
    # 404, not 403: another agency's user does not exist for this admin.
    return get_object_or_404(User, code=code, agency_id=actor.agency_id)


def pending_invitations(*, agency_id: int) -> QuerySet[Invitation]:
    return Invitation.objects.filter(
        agency_id=agency_id, accepted_at=None, revoked_at=None, expires_at__gt=timezone.now()
    ).select_related("invited_by")


def invitation_get(*, actor: User, code) -> Invitation:
    return get_object_or_404(Invitation, code=code, agency_id=actor.agency_id)


# --- Second factor ---------------------------------------------------------------------------------


def user_has_confirmed_totp(*, user: User) -> bool:
    """Whether the user has finished enrolling an authenticator app."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def user_unconfirmed_totp(*, user: User) -> TOTPDevice | None:
    """The authenticator app the user is enrolling, if one was started."""
    return TOTPDevice.objects.filter(user=user, confirmed=False).first()


def user_device_matching_code(*, user: User, code: str) -> TOTPDevice | StaticDevice | None:
    """The user's confirmed device that accepts this code: an authenticator app's, else a backup code."""
    code = code.strip().replace(" ", "")
    # verify_token refuses a TOTP code at or before the last one accepted: no replay.
    for device in TOTPDevice.objects.filter(user=user, confirmed=True):
        if device.verify_token(code):
            return device
    for device in StaticDevice.objects.filter(user=user, confirmed=True):
        if device.verify_token(code):  # a backup code is deleted as it is used
            return device
    return None


def agency_policy(*, agency_id: int) -> AgencyPolicy:
    """The agency's policy; an agency without a row has the defaults, which ask for nothing (not saved)."""
    return AgencyPolicy.objects.filter(agency_id=agency_id).first() or AgencyPolicy(agency_id=agency_id)


def certification_current(user: User, on: date | None = None) -> bool:
    """Whether the user's face-search certification is valid on that day (today by default)."""
    on = on or timezone.localdate()
    return user.search_certified_until is not None and user.search_certified_until >= on
