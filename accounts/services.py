"""Writes for agencies, users, seats, second factors and sign-in security."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import Permission
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import AGENCY_ROLES, PLATFORM_ROLES, Agency, AgencyPolicy, Invitation, Role, User
from portal.audit import audit_record
from portal.models import AuditEntry

# Platform staff run the deployment in Django's admin: agencies, users' contact details and gallery
# sharing, and search jobs as metadata. They see no probe, face, candidate or justification.
PLATFORM_STAFF_PERMISSIONS = [
    "add_agency",
    "change_agency",
    "view_agency",
    "add_agencypolicy",
    "change_agencypolicy",
    "view_agencypolicy",
    "change_user",
    "view_user",
    "view_gallery",
    "change_gallery",
    "add_offensecategory",
    "change_offensecategory",
    "view_offensecategory",
    "view_searchjob",
]
BACKUP_CODE_COUNT = 10


class AccountError(ValueError):
    """A request about agencies or users that cannot be carried out, with the reason."""


def security_event_record(
    *,
    action: str,
    actor: User | None = None,
    subject_user: User | None = None,
    username: str = "",
    agency: Agency | None = None,
    ip_address: str | None = None,
    detail: str = "",
) -> AuditEntry:
    """An account or sign-in event, in the audit log; `username` is whose lock or limit it counts toward."""
    subject = subject_user or actor
    return audit_record(
        action=action,
        actor=actor,
        target=subject_user,
        ip_address=ip_address,
        detail=detail,
        username=username or (subject.username if subject else ""),
        agency=agency or (subject.agency if subject else None),
    )


# --- Agencies and seats -----------------------------------------------------------------------


@transaction.atomic
def agency_create(*, slug: str, name: str, seats: int, licence_until: date | None = None) -> Agency:
    if seats < 0:
        raise AccountError("Seats cannot be negative.")
    if Agency.objects.filter(slug=slug).exists():
        raise AccountError(f"An agency with the slug {slug!r} already exists.")
    return Agency.objects.create(slug=slug, name=name, seats=seats, licence_until=licence_until)


def seats_used(agency: Agency, *, excluding_invitation: Invitation | None = None) -> int:
    """Each active agency user takes a seat, the agency admin included, and so does each pending invitation."""
    pending = Invitation.objects.filter(agency=agency, accepted_at=None, revoked_at=None, expires_at__gt=timezone.now())
    if excluding_invitation is not None:
        pending = pending.exclude(pk=excluding_invitation.pk)
    return agency.users.filter(is_active=True).count() + pending.count()


def _lock_agency_with_free_seat(agency: Agency, *, invitation: Invitation | None = None) -> Agency:
    # Lock the agency row so two concurrent requests cannot both take the last seat.
    agency = Agency.objects.select_for_update().get(pk=agency.pk)
    used = seats_used(agency, excluding_invitation=invitation)  # an accepted invitation uses its own seat
    if used >= agency.seats:
        raise AccountError(
            f"{agency.name} has no free seat ({used} of {agency.seats} in use). "
            "Ask the platform to add seats, or deactivate a user first."
        )
    return agency


@transaction.atomic
def agency_set_seats(
    *,
    agency: Agency,
    seats: int,
    licence_until: date | None = None,
    actor: User | None = None,
    clear_licence: bool = False,
) -> Agency:
    """Set the seats bought (and the licence end date); a quota below the seats in use is refused."""
    agency = Agency.objects.select_for_update().get(pk=agency.pk)
    if seats < seats_used(agency):
        raise AccountError(
            f"{agency.name} has {seats_used(agency)} active users; deactivate some before "
            f"lowering the seats to {seats}."
        )
    before = (agency.seats, agency.licence_until)
    agency.seats = seats
    if licence_until is not None or clear_licence:
        agency.licence_until = licence_until
    agency.save(update_fields=["seats", "licence_until"])
    security_event_record(
        action=AuditEntry.Action.SEATS_CHANGED,
        actor=actor,
        agency=agency,
        username=actor.username if actor else "",
        detail=f"seats {before[0]} → {seats}; licence until {before[1]} → {agency.licence_until}",
    )
    return agency


def licence_ended(agency: Agency | None, today: date | None = None) -> bool:
    if agency is None or agency.licence_until is None:
        return False
    return (today or timezone.localdate()) > agency.licence_until


# --- Users ------------------------------------------------------------------------------------


@dataclass
class NewUser:
    user: User
    totp_secret: str | None
    backup_codes: list[str]


@transaction.atomic
def user_create(
    *, username: str, password: str, role: str, agency: Agency | None = None, email: str = "", actor: User | None = None
) -> User:
    """Create a user; agency roles need an agency with a free seat, platform roles need none."""
    return user_create_with_second_factor(
        username=username, password=password, role=role, agency=agency, email=email, actor=actor, preenrol=False
    ).user


@transaction.atomic
def user_create_with_second_factor(
    *,
    username: str,
    password: str,
    role: str,
    agency: Agency | None = None,
    email: str = "",
    actor: User | None = None,
    preenrol: bool | None = None,
    invitation: Invitation | None = None,
) -> NewUser:
    """Create a user; with pre-enrolment (a setting, off in production) also a TOTP device and backup codes."""
    if User.objects.filter(username=username).exists():
        raise AccountError(f"A user named {username!r} already exists.")
    if role in AGENCY_ROLES:
        if agency is None:
            raise AccountError(f"The role {role} belongs to an agency: name one.")
        agency = _lock_agency_with_free_seat(agency, invitation=invitation)
    elif role in PLATFORM_ROLES:
        if agency is not None:
            raise AccountError(f"The role {role} is a platform role and belongs to no agency.")
    else:
        raise AccountError(f"Unknown role {role!r}.")
    user = User(username=username, role=role, agency=agency, email=email, is_staff=role == Role.PLATFORM_STAFF)
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise AccountError(" ".join(exc.messages)) from None
    user.set_password(password)
    user.save()
    if role == Role.PLATFORM_STAFF:
        user.user_permissions.set(
            Permission.objects.filter(
                content_type__app_label__in=["accounts", "search"], codename__in=PLATFORM_STAFF_PERMISSIONS
            )
        )
    security_event_record(action=AuditEntry.Action.USER_CREATED, actor=actor, subject_user=user, detail=f"role {role}")
    if preenrol is None:
        preenrol = settings.OTP_PREENROL
    if not preenrol:
        return NewUser(user=user, totp_secret=None, backup_codes=[])
    device = totp_device_create(user=user, confirmed=True)
    return NewUser(user=user, totp_secret=totp_secret_base32(device), backup_codes=backup_codes_create(user=user))


def _require_same_agency_admin(actor: User, user: User) -> None:
    if actor.role != Role.AGENCY_ADMIN or actor.agency_id is None or actor.agency_id != user.agency_id:
        raise AccountError("Only an agency admin of the same agency can change this user.")


def _active_admins(agency_id: int) -> int:
    return User.objects.filter(agency_id=agency_id, role=Role.AGENCY_ADMIN, is_active=True).count()


@transaction.atomic
def user_deactivate(*, actor: User, user: User, ip_address: str | None = None) -> User:
    """Free the user's seat and end their sessions; their records and history stay."""
    _require_same_agency_admin(actor, user)
    Agency.objects.select_for_update().get(pk=user.agency_id)
    if user.role == Role.AGENCY_ADMIN and user.is_active and _active_admins(user.agency_id) <= 1:
        raise AccountError("The last agency admin cannot be deactivated: make another user agency admin first.")
    User.objects.filter(pk=user.pk).update(is_active=False, session_generation=F("session_generation") + 1)
    security_event_record(
        action=AuditEntry.Action.USER_DEACTIVATED, actor=actor, subject_user=user, ip_address=ip_address
    )
    user.refresh_from_db()
    return user


@transaction.atomic
def user_reactivate(*, actor: User, user: User, ip_address: str | None = None) -> User:
    _require_same_agency_admin(actor, user)
    if user.is_active:
        return user
    _lock_agency_with_free_seat(user.agency)
    User.objects.filter(pk=user.pk).update(is_active=True)
    security_event_record(
        action=AuditEntry.Action.USER_REACTIVATED, actor=actor, subject_user=user, ip_address=ip_address
    )
    user.refresh_from_db()
    return user


@transaction.atomic
def user_change_role(*, actor: User, user: User, role: str, ip_address: str | None = None) -> User:
    _require_same_agency_admin(actor, user)
    if role not in AGENCY_ROLES:
        raise AccountError(f"{role!r} is not an agency role.")
    Agency.objects.select_for_update().get(pk=user.agency_id)
    if (
        user.role == Role.AGENCY_ADMIN
        and role != Role.AGENCY_ADMIN
        and user.is_active
        and _active_admins(user.agency_id) <= 1
    ):
        raise AccountError("The last agency admin cannot be demoted: make another user agency admin first.")
    before = user.role
    User.objects.filter(pk=user.pk).update(role=role)
    security_event_record(
        action=AuditEntry.Action.ROLE_CHANGED,
        actor=actor,
        subject_user=user,
        ip_address=ip_address,
        detail=f"{before} → {role}",
    )
    user.refresh_from_db()
    return user


@transaction.atomic
def user_password_change(*, user: User, new_password: str, ip_address: str | None = None) -> User:
    """Set one's own password (the caller checked the current one and a second-factor code); every other
    session of the user ends."""
    try:
        validate_password(new_password, user)
    except ValidationError as exc:
        raise AccountError(" ".join(exc.messages)) from None
    user.set_password(new_password)
    user.session_generation = F("session_generation") + 1
    user.save(update_fields=["password", "session_generation"])
    user.refresh_from_db(fields=["session_generation"])
    security_event_record(action=AuditEntry.Action.PASSWORD_CHANGED, actor=user, ip_address=ip_address)
    return user


def user_sign_out_everywhere(*, user: User, ip_address: str | None = None) -> None:
    User.objects.filter(pk=user.pk).update(session_generation=F("session_generation") + 1)
    security_event_record(action=AuditEntry.Action.SIGN_OUT_EVERYWHERE, actor=user, ip_address=ip_address)


# --- Second factor ----------------------------------------------------------------------------


def totp_device_create(*, user: User, confirmed: bool) -> TOTPDevice:
    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    return TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=confirmed)


def totp_secret_base32(device: TOTPDevice) -> str:
    import base64

    return base64.b32encode(device.bin_key).decode()


def backup_codes_create(*, user: User) -> list[str]:
    """New single-use backup codes (the old ones stop working); shown once."""
    device, _ = StaticDevice.objects.get_or_create(user=user, name="Backup codes", defaults={"confirmed": True})
    device.token_set.all().delete()
    codes = [f"{secrets.randbelow(10**8):08d}" for _ in range(BACKUP_CODE_COUNT)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes


def second_factor_enrolment_confirm(*, device: TOTPDevice, token: str) -> list[str] | None:
    """Confirm a new TOTP device with a first code; the backup codes, or None if the code is wrong."""
    if not device.verify_token(token.strip()):
        return None
    TOTPDevice.objects.filter(user=device.user, confirmed=True).exclude(pk=device.pk).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    security_event_record(action=AuditEntry.Action.SECOND_FACTOR_ENROLLED, actor=device.user)
    return backup_codes_create(user=device.user)


# --- Lockout ----------------------------------------------------------------------------------


def sign_in_locked_until(*, username: str, ip_address: str | None, now: datetime | None = None) -> datetime | None:
    """When a lockout of this username or address ends, or None if it is not locked.

    Five failed attempts within 15 minutes lock the username (and, separately, the address) for 30
    minutes from the fifth failure, or until an agency admin unlocks the user.
    """
    now = now or timezone.now()
    window = timedelta(minutes=settings.SIGN_IN_FAILURE_WINDOW_MINUTES)
    lock = timedelta(minutes=settings.SIGN_IN_LOCK_MINUTES)
    limit = settings.SIGN_IN_FAILURE_LIMIT
    ends = []
    # A user's lock is lifted by an unlock or a successful sign-in; an address's by time, or by an
    # unlock of a user whose failures came from it.
    keys = (
        ("username__iexact", username, [AuditEntry.Action.UNLOCKED, AuditEntry.Action.SIGN_IN]),
        ("ip_address", ip_address, [AuditEntry.Action.UNLOCKED]),
    )
    for key, value, resetting_actions in keys:
        if not value:
            continue
        since = now - lock - window
        reset = (
            AuditEntry.objects.filter(**{key: value}, at__gte=since, action__in=resetting_actions)
            .order_by("-at")
            .values_list("at", flat=True)
            .first()
        )
        failures = list(
            AuditEntry.objects.filter(
                **{key: value},
                at__gte=max(since, reset) if reset else since,
                at__lte=now,
                action__in=[AuditEntry.Action.SIGN_IN_FAILED, AuditEntry.Action.SECOND_FACTOR_FAILED],
            )
            .order_by("at")
            .values_list("at", flat=True)
        )
        for i in range(len(failures) - limit + 1):
            if failures[i + limit - 1] - failures[i] <= window and failures[i + limit - 1] + lock > now:
                ends.append(failures[i + limit - 1] + lock)
    return max(ends) if ends else None


@transaction.atomic
def sign_in_unlock(*, actor: User, user: User, ip_address: str | None = None) -> None:
    """Lift the lock of a user, and of the addresses the user's recent failures came from."""
    _require_same_agency_admin(actor, user)
    since = timezone.now() - timedelta(minutes=settings.SIGN_IN_LOCK_MINUTES + settings.SIGN_IN_FAILURE_WINDOW_MINUTES)
    addresses = set(
        AuditEntry.objects.filter(
            username__iexact=user.username,
            at__gte=since,
            ip_address__isnull=False,
            action__in=[AuditEntry.Action.SIGN_IN_FAILED, AuditEntry.Action.SECOND_FACTOR_FAILED],
        ).values_list("ip_address", flat=True)
    )
    by = f"unlocked by {actor.username}" + (f" from {ip_address}" if ip_address else "")
    for address in sorted(addresses) or [None]:
        # The event's address is the one freed; who unlocked, and from where, is in the detail.
        security_event_record(
            action=AuditEntry.Action.UNLOCKED,
            actor=actor,
            subject_user=user,
            username=user.username,
            ip_address=address,
            detail=by,
        )


# --- Invitations ------------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    import hashlib

    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def invitation_create(*, actor: User, email: str, role: str, ip_address: str | None = None) -> tuple[Invitation, str]:
    """A pending invitation (it holds a seat) and the secret token of its link, to be e-mailed."""
    if actor.role != Role.AGENCY_ADMIN or actor.agency_id is None:
        raise AccountError("Only an agency admin invites users.")
    if role not in AGENCY_ROLES:
        raise AccountError(f"{role!r} is not an agency role.")
    if User.objects.filter(agency_id=actor.agency_id, email__iexact=email, is_active=True).exists():
        raise AccountError(f"{email} already has an active account in your agency.")
    agency = _lock_agency_with_free_seat(actor.agency)
    now = timezone.now()
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        agency=agency,
        email=email,
        role=role,
        token_hash=_token_hash(token),
        invited_by=actor,
        created_at=now,
        expires_at=now + timedelta(hours=settings.INVITATION_VALID_HOURS),
    )
    security_event_record(
        action=AuditEntry.Action.INVITATION_SENT, actor=actor, ip_address=ip_address, detail=f"{email} as {role}"
    )
    return invitation, token


def invitation_for_token(token: str) -> Invitation:
    """The pending invitation of a link, or AccountError saying why the link no longer works."""
    invitation = Invitation.objects.select_related("agency").filter(token_hash=_token_hash(token)).first()
    if invitation is None:
        raise AccountError("This invitation link is not valid. Ask your agency admin for a new one.")
    if invitation.accepted_at is not None:
        raise AccountError("This invitation was already used. Sign in with the account it created.")
    if invitation.revoked_at is not None:
        raise AccountError("This invitation was withdrawn by your agency admin.")
    if licence_ended(invitation.agency):
        raise AccountError(
            f"The licence of {invitation.agency.name} has ended: the invitation cannot be used until it is renewed."
        )
    if invitation.expires_at <= timezone.now():
        raise AccountError(
            f"This invitation expired on {timezone.localtime(invitation.expires_at):%d %B %Y at %H:%M}. "
            "Ask your agency admin for a new one."
        )
    return invitation


@transaction.atomic
def invitation_accept(*, token: str, username: str, password: str, ip_address: str | None = None) -> User:
    """Create the invited user (their second factor is enrolled at their first sign-in)."""
    invitation = invitation_for_token(token)
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.accepted_at is not None:  # accepted in a concurrent request
        raise AccountError("This invitation was already used. Sign in with the account it created.")
    created = user_create_with_second_factor(
        username=username,
        password=password,
        role=invitation.role,
        agency=invitation.agency,
        email=invitation.email,
        actor=invitation.invited_by,
        preenrol=False,
        invitation=invitation,
    )
    Invitation.objects.filter(pk=invitation.pk).update(accepted_at=timezone.now(), accepted_user=created.user)
    security_event_record(
        action=AuditEntry.Action.INVITATION_ACCEPTED, actor=created.user, ip_address=ip_address, detail=invitation.email
    )
    return created.user


@transaction.atomic
def invitation_revoke(*, actor: User, invitation: Invitation, ip_address: str | None = None) -> None:
    if actor.role != Role.AGENCY_ADMIN or actor.agency_id != invitation.agency_id:
        raise AccountError("Only an agency admin of the same agency can withdraw this invitation.")
    Invitation.objects.filter(pk=invitation.pk, accepted_at=None).update(revoked_at=timezone.now())
    security_event_record(
        action=AuditEntry.Action.INVITATION_REVOKED, actor=actor, ip_address=ip_address, detail=invitation.email
    )


# --- Rate limits --------------------------------------------------------------------------------


def rate_limited(
    *,
    ip_address: str | None,
    actions: list[str],
    per_minute: int,
    now: datetime | None = None,
    every_address: bool = False,
) -> bool:
    """True when this address (or, with every_address, all addresses together) already made `per_minute`
    recorded attempts of these kinds in the last minute.

    Attempts are the security events the pages record anyway, so the limit holds across processes
    and hosts without another store.
    """
    if not ip_address and not every_address:
        return False
    now = now or timezone.now()
    attempts = AuditEntry.objects.filter(action__in=actions, at__gt=now - timedelta(minutes=1), at__lte=now)
    if not every_address:
        attempts = attempts.filter(ip_address=ip_address)
    return attempts.count() >= per_minute


# --- Lawful use: the agency's policy (platform staff) and its users' certification (the agency admin) -------

POLICY_FIELDS = (
    "authorisation_required",
    "urgent_window_hours",
    "certification_required",
    "watchlist_max_entries",
    "watchlist_max_days",
)


@transaction.atomic
def agency_policy_set(*, agency: Agency, actor: User | None, ip_address: str | None = None, **changes) -> AgencyPolicy:
    """Change the agency's policy (only the fields given), audited with what changed. Platform staff (the admin) or
    a command; an agency's own users never change it."""
    if actor is not None and actor.role != Role.PLATFORM_STAFF:
        raise AccountError("Only platform staff set an agency's policy.")
    unknown = set(changes) - set(POLICY_FIELDS)
    if unknown:
        raise AccountError(f"Unknown policy settings: {', '.join(sorted(unknown))}.")
    if "urgent_window_hours" in changes and not 1 <= int(changes["urgent_window_hours"]) <= 24 * 30:
        raise AccountError("The urgent-use window must be between 1 hour and 30 days (720 hours).")
    if "watchlist_max_days" in changes and not 1 <= int(changes["watchlist_max_days"]) <= 365:
        raise AccountError("A watch-list entry lives at most a year: give 1 to 365 days.")
    if "watchlist_max_entries" in changes and int(changes["watchlist_max_entries"]) < 0:
        raise AccountError("The watch-list limit cannot be negative.")
    policy, _ = AgencyPolicy.objects.select_for_update().get_or_create(agency=agency)
    before = {name: getattr(policy, name) for name in POLICY_FIELDS}
    for name, value in changes.items():
        setattr(policy, name, value)
    policy.updated_at = timezone.now()
    policy.updated_by = actor
    policy.save()
    after = {name: getattr(policy, name) for name in POLICY_FIELDS}
    changed = {name: [before[name], after[name]] for name in POLICY_FIELDS if before[name] != after[name]}
    audit_record(
        action=AuditEntry.Action.POLICY_CHANGED,
        actor=actor,
        agency=agency,
        ip_address=ip_address,
        target=agency,
        detail=", ".join(f"{name}: {old} → {new}" for name, (old, new) in changed.items())[:300] or "no change",
        data={"changed": changed, "policy": after},
    )
    return policy


@transaction.atomic
def user_certification_set(
    *,
    actor: User | None,
    user: User,
    trained_on: date | None,
    certified_until: date | None,
    ip_address: str | None = None,
) -> User:
    """Record a user's face-search training and the last day its certification is valid (both empty: none).
    The agency admin of the user's agency, or a command (actor None)."""
    if actor is not None:
        _require_same_agency_admin(actor, user)
    if user.agency_id is None:
        raise AccountError("Only agency users search, so only they hold a face-search certification.")
    if (trained_on is None) != (certified_until is None):
        raise AccountError("Give both the training date and the last day the certification is valid, or neither.")
    if trained_on is not None:
        if trained_on > timezone.localdate():
            raise AccountError("The training date cannot be in the future.")
        if certified_until < trained_on:
            raise AccountError("The certification cannot end before the training took place.")
    before = (user.search_trained_on, user.search_certified_until)
    User.objects.filter(pk=user.pk).update(search_trained_on=trained_on, search_certified_until=certified_until)
    user.refresh_from_db()
    security_event_record(
        action=AuditEntry.Action.CERTIFICATION_CHANGED,
        actor=actor,
        subject_user=user,
        ip_address=ip_address,
        detail=(
            f"trained {trained_on or '—'}, valid until {certified_until or '—'} "
            f"(was {before[0] or '—'}, {before[1] or '—'})"
        ),
    )
    return user
