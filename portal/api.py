"""The API's shared parts (problem+json errors, pagination, filters) and its case and case-report resources.

API views are entry points like the pages: they parse, call the same selectors and services, and answer.
"""

from __future__ import annotations

import logging
from datetime import UTC

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from drf_spectacular.views import SpectacularSwaggerSplitView
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler

from portal import selectors, services
from portal.client_address import client_address
from portal.models import AuditEntry, Case, CaseReport
from portal.object_storage import MediaUnavailable

logger = logging.getLogger(__name__)

PROBLEM = "application/problem+json"
TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    429: "Too many requests",
    500: "Server error",
    503: "Service unavailable",
}


# --- Errors: RFC 9457 problem details ---------------------------------------------------------------------


class ProblemSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="Always about:blank: the status and title say what happened")
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Per field, what is wrong (validation errors only)",
    )


def problem_responses(*codes: int) -> dict:
    """extend_schema responses: each status as problem+json."""
    return {(code, PROBLEM): OpenApiResponse(ProblemSerializer, description=TITLES.get(code, "")) for code in codes}


def problem(status_code: int, detail: str, *, errors: dict | None = None, headers: dict | None = None) -> Response:
    body = {"type": "about:blank", "title": TITLES.get(status_code, "Error"), "status": status_code, "detail": detail}
    if errors:
        body["errors"] = errors
    response = Response(body, status=status_code, content_type=PROBLEM, headers=headers)
    response["Cache-Control"] = "private, no-store"
    return response


def _flatten(errors) -> dict[str, list[str]]:
    if isinstance(errors, dict):
        return {
            str(field): [str(m) for m in (messages if isinstance(messages, list) else [messages])]
            for field, messages in errors.items()
        }
    return {"non_field_errors": [str(m) for m in errors]}


def problem_exception_handler(exc, context):
    """Every error of the API as problem+json with a plain detail; never an HTML page, never a bare 500."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, ValidationError):
        exc = exceptions.ValidationError(" ".join(exc.messages))
    if isinstance(exc, MediaUnavailable):
        return problem(
            503, f"{exc} Nothing of this request was stored half; try again later.", headers={"Retry-After": "30"}
        )
    response = exception_handler(exc, context)
    if response is None:
        logger.exception("API error", exc_info=exc)
        return problem(500, "The server could not answer this request; it has been logged.")
    headers = {k: v for k, v in response.items() if k in ("Retry-After", "WWW-Authenticate", "Allow")}
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        detail = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in errors.items())
        return problem(400, detail or "Invalid request.", errors=errors, headers=headers)
    if isinstance(exc, exceptions.Throttled):
        wait = int(exc.wait or 60)
        headers["Retry-After"] = str(max(wait, 1))
        return problem(429, f"Too many requests for this token: wait {max(wait, 1)} s.", headers=headers)
    detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
    return problem(response.status_code, str(detail), headers=headers)


class ApiView(APIView):
    """Every API view: an unsupported method is a 405 before anything else (also for a missing token)."""

    def initial(self, request, *args, **kwargs):
        method = request.method.lower()
        if method not in self.http_method_names or not hasattr(self, method):
            raise exceptions.MethodNotAllowed(request.method)
        super().initial(request, *args, **kwargs)


class Refused(exceptions.APIException):
    """A service's refusal (SearchRefused, CaseError, ReviewRefused …): 400 with its reason."""

    status_code = 400
    default_detail = "The request was refused."


class NotReady(exceptions.APIException):
    status_code = 409
    default_detail = "Not ready yet."


@csrf_exempt  # no session counts under /api/: a POST to a wrong path is a 404 like any other
def api_not_found(request, exception=None):
    """Any /api/ path that names no resource: 404 as problem+json (the resolver's own page is HTML)."""
    from django.http import JsonResponse

    return JsonResponse(
        {"type": "about:blank", "title": "Not found", "status": 404, "detail": f"No API resource at {request.path}."},
        status=404,
        content_type=PROBLEM,
        headers={"Cache-Control": "private, no-store"},
    )


class ApiDocs(SpectacularSwaggerSplitView):
    """Swagger UI from the package's own files (drf-spectacular-sidecar), its init script a file too."""

    template_name = "api/swagger_ui.html"


# --- Lists: pagination and filters -------------------------------------------------------------------------


class Pagination(LimitOffsetPagination):
    default_limit = settings.API_PAGE_SIZE
    max_limit = 200

    def get_offset(self, request):
        # A bounded offset: a huge number would overflow the database's integer rather than give an empty page.
        return min(super().get_offset(request), 10**9)


def paginated_schema(serializer_class):
    """The schema of a page of `serializer_class` (count, next, previous, results)."""
    name = serializer_class.__name__.removesuffix("Serializer")
    return inline_serializer(
        name=f"Paginated{name}List",
        fields={
            "count": serializers.IntegerField(),
            "next": serializers.CharField(allow_null=True),
            "previous": serializers.CharField(allow_null=True),
            "results": serializer_class(many=True),
        },
    )


LIST_FILTERS = [
    OpenApiParameter("limit", int, description="Items per page (at most 200)"),
    OpenApiParameter("offset", int, description="Items to skip"),
    OpenApiParameter("created_after", OpenApiTypes.DATETIME, description="Made at or after (ISO 8601 date or time)"),
    OpenApiParameter("created_before", OpenApiTypes.DATETIME, description="Made before (ISO 8601 date or time)"),
]


def _moment(name: str, value: str):
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise exceptions.ValidationError({name: ["Give an ISO 8601 date (2026-01-31) or date and time."]})
        moment = timezone.make_aware(timezone.datetime(day.year, day.month, day.day))
    elif timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    # In UTC: PostgreSQL refuses offsets beyond ±15:59 that ISO 8601 allows.
    return moment.astimezone(UTC)


def filter_listing(request, queryset, *, statuses):
    """created_after / created_before / status of a list, refused clearly when malformed."""
    params = request.query_params
    try:
        if params.get("created_after"):
            queryset = queryset.filter(created_at__gte=_moment("created_after", params["created_after"]))
        if params.get("created_before"):
            queryset = queryset.filter(created_at__lt=_moment("created_before", params["created_before"]))
    except (ValueError, OverflowError):
        raise exceptions.ValidationError({"created_after": ["Not a valid date."]})
    state = params.get("status", "")
    if state:
        if state not in statuses:
            raise exceptions.ValidationError({"status": [f"One of: {', '.join(statuses)}."]})
        queryset = queryset.filter(status=state)
    return queryset


def paginated(view, request, queryset, serializer_class, **context):
    paginator = Pagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(
        serializer_class(page, many=True, context={"request": request, **context}).data
    )


# --- Cases ---------------------------------------------------------------------------------------------------


class CaseSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="code", read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True)
    url = serializers.SerializerMethodField()
    searches_url = serializers.SerializerMethodField()

    class Meta:
        model = Case
        fields = ["id", "number", "title", "status", "created_by", "created_at", "closed_at", "url", "searches_url"]
        read_only_fields = fields

    def get_url(self, case) -> str:
        return reverse("api:case-detail", kwargs={"code": case.code})

    def get_searches_url(self, case) -> str:
        return reverse("api:case-searches", kwargs={"code": case.code})


class CaseCreateSerializer(serializers.Serializer):
    number = serializers.CharField(max_length=64)
    title = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


CASE_FILTERS = [*LIST_FILTERS, OpenApiParameter("status", str, enum=[s.value for s in Case.Status])]


class CaseList(ApiView):
    @extend_schema(
        operation_id="cases_list",
        summary="The agency's cases, newest first",
        parameters=CASE_FILTERS,
        responses={200: paginated_schema(CaseSerializer), **problem_responses(400, 401, 403, 429)},
        tags=["cases"],
    )
    def get(self, request):
        cases = filter_listing(request, selectors.case_list(user=request.user), statuses=[s.value for s in Case.Status])
        return paginated(self, request, cases.order_by("-created_at", "-id"), CaseSerializer)

    @extend_schema(
        operation_id="cases_create",
        summary="Open a case",
        request=CaseCreateSerializer,
        responses={201: CaseSerializer, **problem_responses(400, 401, 403, 415, 429)},
        tags=["cases"],
    )
    def post(self, request):
        form = CaseCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            case = services.case_create(created_by=request.user, **form.validated_data)
        except services.CaseError as exc:
            raise Refused(str(exc))
        body = CaseSerializer(case).data
        return Response(body, status=201, headers={"Location": body["url"]})


class CaseDetail(ApiView):
    @extend_schema(
        operation_id="cases_read",
        summary="One case",
        responses={200: CaseSerializer, **problem_responses(401, 403, 404, 429)},
        tags=["cases"],
    )
    def get(self, request, code):
        return Response(CaseSerializer(selectors.case_get(user=request.user, code=code)).data)


class CaseClose(ApiView):
    @extend_schema(
        operation_id="cases_close",
        summary="Close a case (it can no longer be searched)",
        request=None,
        responses={200: CaseSerializer, **problem_responses(401, 403, 404, 429)},
        tags=["cases"],
    )
    def post(self, request, code):
        case = selectors.case_get(user=request.user, code=code)
        if case.status != Case.Status.CLOSED:
            case = services.case_close(case=case, actor=request.user)
        return Response(CaseSerializer(case).data)


# --- Case report ---------------------------------------------------------------------------------------------


class CaseReportSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="code", read_only=True)
    url = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = CaseReport
        fields = ["id", "status", "url", "download_url"]
        read_only_fields = fields

    def get_url(self, report) -> str:
        return reverse("api:report-detail", kwargs={"code": report.code})

    def get_download_url(self, report) -> str | None:
        if report.status == CaseReport.Status.DONE and report.file:
            return reverse("api:report-download", kwargs={"code": report.code})
        return None


class CaseReportRequest(ApiView):
    @extend_schema(
        operation_id="case_report_request",
        summary="Ask for the case's PDF report (made by a worker; poll its URL)",
        request=None,
        responses={202: CaseReportSerializer, **problem_responses(401, 403, 404, 429)},
        tags=["reports"],
    )
    def post(self, request, code):
        case = selectors.case_get(user=request.user, code=code)
        report = services.case_report_request(case=case, user=request.user, ip_address=client_address(request))
        body = CaseReportSerializer(report).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})


class CaseReportDetail(ApiView):
    @extend_schema(
        operation_id="case_report_read",
        summary="A case report's status (download_url once it is made)",
        responses={200: CaseReportSerializer, **problem_responses(401, 403, 404, 429)},
        tags=["reports"],
    )
    def get(self, request, code):
        return Response(CaseReportSerializer(selectors.case_report_get(user=request.user, code=code)).data)


class CaseReportDownload(ApiView):
    @extend_schema(
        operation_id="case_report_download",
        summary="The report's PDF",
        responses={
            (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="The PDF"),
            **problem_responses(401, 403, 404, 409, 429),
        },
        tags=["reports"],
    )
    def get(self, request, code):
        report = selectors.case_report_get(user=request.user, code=code)
        if report.status != CaseReport.Status.DONE or not report.file:
            raise NotReady("The report is not made yet: poll its URL until download_url is given.")
        from portal.audit import audit_record

        audit_record(
            action=AuditEntry.Action.REPORT_DOWNLOADED,
            actor=request.user,
            case=report.case,
            target=report,
            ip_address=client_address(request),
        )
        response = FileResponse(
            report.file.open("rb"),
            content_type="application/pdf",
            as_attachment=True,
            filename=f"case-{report.case.number}-report.pdf",
        )
        response["Cache-Control"] = "private, no-store"
        return response
