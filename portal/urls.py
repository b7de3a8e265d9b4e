from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.views import redirect_to_login
from django.urls import include, path, reverse
from django_otp.admin import OTPAdminSite

from portal import disclosure_urls, ops_views, views

portal_patterns = [
    path("", views.dashboard, name="dashboard"),
    path("cases/", views.case_list, name="case-list"),
    path("cases/new/", views.case_create, name="case-create"),
    path("cases/<uuid:code>/", views.case_detail, name="case-detail"),
    path("cases/<uuid:code>/close/", views.case_close, name="case-close"),
    path("cases/<uuid:code>/reopen/", views.case_reopen, name="case-reopen"),
    path("cases/<uuid:code>/report/", views.case_report_request, name="case-report-request"),
    path("reports/<uuid:code>.pdf", views.case_report_download, name="case-report-download"),
    path("reports/<uuid:code>/status.json", views.case_report_status, name="case-report-status"),
    path("audit/", views.audit_log, name="audit-log"),
    path("audit/export.csv", views.audit_export, name="audit-export"),
]
portal_patterns += disclosure_urls.urlpatterns

# Probes and the scrape: no sign-in; exempt from the HTTPS redirect in production (SECURE_REDIRECT_EXEMPT).
ops_patterns = [
    path("healthz", ops_views.healthz, name="healthz"),
    path("readyz", ops_views.readyz, name="readyz"),
    path("metrics", ops_views.metrics, name="metrics"),
]


class PortalAdminSite(OTPAdminSite):
    """The admin asks for the second factor too, and has no sign-in page of its own: its users sign in
    through the portal's, the one with the lockout, the rate limit, the audit and the no-replay rule."""

    def login(self, request, extra_context=None):
        next_url = request.GET.get(REDIRECT_FIELD_NAME) or reverse("admin:index", current_app=self.name)
        return redirect_to_login(next_url, login_url="accounts:login")


admin.site.__class__ = PortalAdminSite

urlpatterns = [
    path("", include((portal_patterns, "portal"))),
    path("", include((ops_patterns, "ops"))),
    path("accounts/", include("accounts.urls")),
    path("privacy/", include("search.privacy_urls")),
    path("", include("search.urls")),
    path("admin/", admin.site.urls),
    path("api/", include("portal.api_urls")),
]
