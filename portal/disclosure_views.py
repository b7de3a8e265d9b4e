"""The disclosure packet's download, as a page link and in the REST API: built on request (a case has few
searches), audited with its SHA-256 before the bytes leave (portal/reports/disclosure.py)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.views.decorators.http import require_safe
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions

from accounts.models import Role
from portal import selectors
from portal.access import private, supervisor_required
from portal.api import ApiView, problem_responses
from portal.client_address import client_address
from portal.reports.disclosure import DISCLOSERS, DisclosureRefused, disclosure_packet


def _packet_response(request, case) -> HttpResponse:
    try:
        packet, digest = disclosure_packet(case=case, user=request.user, ip_address=client_address(request))
    except DisclosureRefused as exc:
        raise PermissionDenied(str(exc))  # the page's 403, or the API's problem+json 403
    response = HttpResponse(packet, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="case-{case.code}-disclosure.zip"'
    response["X-Content-SHA256"] = digest
    return private(response)


@require_safe
@supervisor_required
def case_disclosure(request, code):
    """The case's disclosure packet (supervisors and agency admins; another agency's case is a 404)."""
    return _packet_response(request, selectors.case_get(user=request.user, code=code))


class CaseDisclosure(ApiView):
    @extend_schema(
        operation_id="case_disclosure_packet",
        summary="The case's disclosure packet: a ZIP of disclosure.json, disclosure.pdf and manifest.json "
        "(supervisors and agency admins)",
        responses={
            (200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="The ZIP"),
            **problem_responses(401, 403, 404, 429),
        },
        tags=["reports"],
    )
    def get(self, request, code):
        if request.user.role not in DISCLOSERS:
            raise exceptions.PermissionDenied(
                "Only supervisors and agency admins produce a disclosure packet, not the "
                f"{Role(request.user.role).label.lower()}."
            )
        return _packet_response(request, selectors.case_get(user=request.user, code=code))
