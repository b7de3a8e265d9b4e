"""The user's own API tokens (list, revoke) and the token's place in the OpenAPI document; authentication,
permission and rate limit are in accounts/api_auth.py."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers
from rest_framework.response import Response

from accounts import tokens
from accounts.models import ApiToken
from portal.api import ApiView, problem_responses
from portal.client_address import client_address


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.api_auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "fsp_…"}


# --- The user's own tokens -------------------------------------------------------------------------------


class ApiTokenSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="code", read_only=True)
    revoked_by = serializers.CharField(source="revoked_by.username", default=None, read_only=True, allow_null=True)

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at", "revoked_by"]
        read_only_fields = fields


class TokenList(ApiView):
    @extend_schema(
        operation_id="tokens_list",
        summary="Your API tokens, with their last use",
        responses={200: ApiTokenSerializer(many=True), **problem_responses(401, 403, 429)},
        tags=["tokens"],
    )
    def get(self, request):
        return Response(ApiTokenSerializer(tokens.api_tokens_of(user=request.user), many=True).data)


class TokenRevoke(ApiView):
    @extend_schema(
        operation_id="tokens_revoke",
        summary="Revoke one of your tokens (an agency admin: any of the agency's)",
        request=None,
        responses={200: ApiTokenSerializer, **problem_responses(401, 403, 404, 429)},
        tags=["tokens"],
    )
    def post(self, request, code):
        try:
            api_token = tokens.api_token_get(user=request.user, code=code)
        except tokens.TokenError as exc:
            raise exceptions.NotFound(str(exc))
        api_token = tokens.api_token_revoke(actor=request.user, api_token=api_token, ip_address=client_address(request))
        return Response(ApiTokenSerializer(api_token).data)
