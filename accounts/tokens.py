"""Per-user API tokens: made, checked, listed and revoked here, and nowhere else.

A token is `fsp_<prefix>_<secret>`: the prefix (public, unique) finds the row, the secret (256 random bits)
is kept only as its SHA-256. A fast hash is right for a high-entropy secret (no dictionary to guess from),
and the comparison is in constant time. A token stands for both factors: only a user signed in with both
(or an operator at the command line) makes one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import ApiToken, Role, User
from accounts.services import licence_ended
from portal.audit import audit_record
from portal.models import AuditEntry

TOKEN_PREFIX = "fsp"


class TokenError(ValueError):
    """A token that cannot be made, used or revoked, with the reason."""


@dataclass(frozen=True)
class NewToken:
    token: str  # shown once, never stored
    api_token: ApiToken


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_days_check(days: int | None) -> int:
    days = settings.API_TOKEN_DEFAULT_DAYS if days is None else days
    if days < 1 or days > settings.API_TOKEN_MAX_DAYS:
        raise TokenError(f"A token lasts from 1 to {settings.API_TOKEN_MAX_DAYS} days, not {days}.")
    return days


@transaction.atomic
def api_token_create(*, user: User, name: str, days: int | None = None, ip_address: str | None = None) -> NewToken:
    name = (name or "").strip()
    if not name:
        raise TokenError("Name the token (what it is for), e.g. “case-management export”.")
    if len(name) > 100:
        raise TokenError("A token's name has at most 100 characters.")
    days = token_days_check(days)
    if not user.is_active:
        raise TokenError(f"{user.username} is deactivated.")
    if user.agency_id is None:
        raise TokenError("Only agency users use the API.")
    if licence_ended(user.agency):
        raise TokenError(f"The licence of {user.agency.name} has ended.")
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    now = timezone.now()
    api_token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=prefix,
        secret_hash=_secret_hash(secret),
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    audit_record(
        action=AuditEntry.Action.API_TOKEN_CREATED,
        actor=user,
        target=api_token,
        detail=name,
        ip_address=ip_address,
        data={"prefix": prefix, "expires_at": api_token.expires_at.isoformat()},
    )
    return NewToken(token=f"{TOKEN_PREFIX}_{prefix}_{secret}", api_token=api_token)


def api_token_verify(token: str, *, now: datetime | None = None) -> ApiToken:
    """The live token this string is, its last use recorded; raises TokenError (the caller answers 401)."""
    parts = (token or "").split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or not parts[2]:
        raise TokenError("Malformed token: expected “Authorization: Bearer fsp_…”.")
    api_token = ApiToken.objects.select_related("user", "user__agency").filter(prefix=parts[1]).first()
    # Hash and compare even when no row matched, so that timing tells nothing about which prefixes exist.
    expected = api_token.secret_hash if api_token else "0" * 64
    if not hmac.compare_digest(_secret_hash(parts[2]), expected) or api_token is None:
        raise TokenError("Unknown token.")
    now = now or timezone.now()
    if api_token.revoked_at is not None:
        raise TokenError("This token was revoked.")
    if api_token.expires_at <= now:
        raise TokenError("This token has expired: make a new one at /accounts/tokens/.")
    user = api_token.user
    if not user.is_active:
        raise TokenError("Your account was deactivated by your agency admin.")
    if licence_ended(user.agency):
        raise TokenError(f"The licence of {user.agency.name} ended on {user.agency.licence_until:%d %B %Y}.")
    # At most one write a minute per token: the list shows the last use to the minute.
    if api_token.last_used_at is None or now - api_token.last_used_at > timedelta(minutes=1):
        ApiToken.objects.filter(pk=api_token.pk).update(last_used_at=now)
        api_token.last_used_at = now
    return api_token


def api_tokens_of(*, user: User) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user).select_related("revoked_by")


def agency_api_tokens(*, admin: User) -> QuerySet[ApiToken]:
    """The live tokens of the admin's agency, for the seats page."""
    if admin.role != Role.AGENCY_ADMIN or admin.agency_id is None:
        return ApiToken.objects.none()
    return ApiToken.objects.filter(
        user__agency_id=admin.agency_id, revoked_at__isnull=True, expires_at__gt=timezone.now()
    ).select_related("user")


def api_token_get(*, user: User, code) -> ApiToken:
    """A token the user may revoke: their own, or (an agency admin) one of their agency's users; else TokenError."""
    api_token = ApiToken.objects.select_related("user").filter(code=code).first()
    if api_token is None:
        raise TokenError("No such token.")
    own = api_token.user_id == user.id
    admin = user.role == Role.AGENCY_ADMIN and user.agency_id and api_token.user.agency_id == user.agency_id
    if not (own or admin):
        raise TokenError("No such token.")
    return api_token


@transaction.atomic
def api_token_revoke(*, actor: User, api_token: ApiToken, ip_address: str | None = None) -> ApiToken:
    api_token = api_token_get(user=actor, code=api_token.code)
    if api_token.revoked_at is None:
        ApiToken.objects.filter(pk=api_token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now(), revoked_by=actor
        )
        api_token.refresh_from_db()
        audit_record(
            action=AuditEntry.Action.API_TOKEN_REVOKED,
            actor=actor,
            target=api_token,
            detail=api_token.name,
            ip_address=ip_address,
            data={"prefix": api_token.prefix, "owner": api_token.user.username},
        )
    return api_token
