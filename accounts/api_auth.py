"""The API's front door, loaded by DRF's settings (so it imports no DRF view): Bearer-token authentication,
the agency-user permission and the per-token rate limit. Token writes and reads are in accounts/tokens.py."""

from __future__ import annotations

from django.conf import settings
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.throttling import SimpleRateThrottle

from accounts import tokens
from accounts.models import ApiToken


class BearerTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer fsp_…`; nothing else (no session, no basic): CSRF has nothing to protect."""

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header:
            return None
        if header[0].lower() != b"bearer" or len(header) != 2:
            raise exceptions.AuthenticationFailed("Send the token as “Authorization: Bearer fsp_…”.")
        try:
            api_token = tokens.api_token_verify(header[1].decode("ascii", "replace"))
        except tokens.TokenError as exc:
            raise exceptions.AuthenticationFailed(str(exc))
        return api_token.user, api_token

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class AgencyTokenUser(BasePermission):
    """A token of an active agency user (platform accounts run the deployment; they do not search)."""

    message = "Only agency users use the API."

    def has_permission(self, request, view):
        if not isinstance(request.auth, ApiToken):
            raise exceptions.NotAuthenticated("Send a token: “Authorization: Bearer fsp_…” (docs/api.md).")
        return request.user.agency_id is not None


class TokenRateThrottle(SimpleRateThrottle):
    """API_RATE_PER_MINUTE requests a minute per token, counted in the shared cache (settings.CACHES)."""

    scope = "token"

    def get_rate(self):
        # Read when DRF makes the throttle, on every request: a setting changed at run time (tests) applies.
        return f"{settings.API_RATE_PER_MINUTE}/min"

    def get_cache_key(self, request, view):
        if not isinstance(request.auth, ApiToken):
            return None
        # The token's random prefix, not its row id: ids repeat across test databases, prefixes do not.
        return f"api-rate:{request.auth.prefix}"
