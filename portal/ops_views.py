"""/healthz, /readyz and /metrics: no sign-in, no case or personal data; the logic is in portal/ops/."""

from django.http import HttpResponse, HttpResponseForbidden, JsonResponse
from django.views.decorators.http import require_safe

from portal.ops import health
from portal.ops import metrics as ops_metrics


@require_safe
def healthz(request):
    return JsonResponse(health.liveness())


@require_safe
def readyz(request):
    readiness = health.readiness()
    return JsonResponse(readiness, status=503 if readiness["status"] == health.DOWN else 200)


@require_safe
def metrics(request):
    if not ops_metrics.metrics_access_allowed(request):
        return HttpResponseForbidden(
            "Metrics are served to the addresses of METRICS_ALLOWED or with the bearer token of METRICS_TOKEN.",
            content_type="text/plain",
        )
    body, content_type = ops_metrics.metrics_text()
    return HttpResponse(body, content_type=content_type)
