"""URLs of the lineup pages (included by search/urls.py) and of its REST API (included by portal/api_urls.py)."""

from django.urls import path

from search import lineup_api, lineup_views

CANDIDATE = "searches/<uuid:code>/faces/<int:face>/candidates/<int:rank>/"

urlpatterns = [
    path(f"{CANDIDATE}evidence/", lineup_views.evidence_record, name="lead-evidence"),
    path(f"{CANDIDATE}clear/", lineup_views.lead_clear, name="lead-clear"),
]
api_patterns = [
    path(f"{CANDIDATE}evidence/", lineup_api.LeadEvidence.as_view(), name="lead-evidence"),
    path(f"{CANDIDATE}clear/", lineup_api.LeadClear.as_view(), name="lead-clear"),
]
