"""Writes for agencies and users."""

from __future__ import annotations

from django.contrib.auth.models import Permission
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import AGENCY_ROLES, PLATFORM_ROLES, Agency, Role, User


# Platform staff run the deployment in Django's admin: agencies, users and gallery sharing, and the
# state of search jobs. They see no probe, face or candidate.
PLATFORM_STAFF_PERMISSIONS = [
    "add_agency", "change_agency", "view_agency",
    "add_user", "change_user", "view_user",
    "view_gallery", "change_gallery",
    "view_searchjob",
]


class AccountError(ValueError):
    """A request about agencies or users that cannot be carried out, with the reason."""


@transaction.atomic
def agency_create(*, slug: str, name: str, seats: int) -> Agency:
    if seats < 0:
        raise AccountError("Seats cannot be negative.")
    if Agency.objects.filter(slug=slug).exists():
        raise AccountError(f"An agency with the slug {slug!r} already exists.")
    return Agency.objects.create(slug=slug, name=name, seats=seats)


def seats_used(agency: Agency) -> int:
    return agency.users.filter(is_active=True).count()


@transaction.atomic
def user_create(*, username: str, password: str, role: str, agency: Agency | None = None,
                email: str = "") -> User:
    """Create a user; agency roles need an agency with a free seat, platform roles need none."""
    if User.objects.filter(username=username).exists():
        raise AccountError(f"A user named {username!r} already exists.")
    if role in AGENCY_ROLES:
        if agency is None:
            raise AccountError(f"The role {role} belongs to an agency: name one.")
        # Lock the agency row so two concurrent creations cannot both take the last seat.
        agency = Agency.objects.select_for_update().get(pk=agency.pk)
        if seats_used(agency) >= agency.seats:
            raise AccountError(
                f"{agency.name} has no free seat ({seats_used(agency)} of {agency.seats} in use).")
    elif role in PLATFORM_ROLES:
        if agency is not None:
            raise AccountError(f"The role {role} is a platform role and belongs to no agency.")
    else:
        raise AccountError(f"Unknown role {role!r}.")
    user = User(username=username, role=role, agency=agency, email=email,
                is_staff=role == Role.PLATFORM_STAFF)
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise AccountError(" ".join(exc.messages)) from None
    user.set_password(password)
    user.save()
    if role == Role.PLATFORM_STAFF:
        user.user_permissions.set(Permission.objects.filter(
            content_type__app_label__in=["accounts", "search"], codename__in=PLATFORM_STAFF_PERMISSIONS))
    return user
