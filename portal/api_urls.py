"""The REST API's URLs, /api/v1/ (docs/api.md); anything else under /api/ is a problem+json 404."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularJSONAPIView

from accounts import api as accounts_api
from portal import api, disclosure_urls
from search import api as search_api
from search import lawful_urls, lineup_urls, usage_urls, watchlist_urls

app_name = "api"

v1 = [
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="schema"),
    path("docs/", api.ApiDocs.as_view(url_name="api:schema"), name="docs"),
    path("cases/", api.CaseList.as_view(), name="case-list"),
    path("cases/<uuid:code>/", api.CaseDetail.as_view(), name="case-detail"),
    path("cases/<uuid:code>/close/", api.CaseClose.as_view(), name="case-close"),
    path("cases/<uuid:code>/searches/", search_api.CaseSearches.as_view(), name="case-searches"),
    path("cases/<uuid:code>/report/", api.CaseReportRequest.as_view(), name="case-report"),
    path("reports/<uuid:code>/", api.CaseReportDetail.as_view(), name="report-detail"),
    path("reports/<uuid:code>/download/", api.CaseReportDownload.as_view(), name="report-download"),
    path("purposes/", search_api.OffenseCategoryList.as_view(), name="purposes"),
    path("searches/<uuid:code>/", search_api.SearchDetail.as_view(), name="search-detail"),
    path("searches/<uuid:code>/results/", search_api.SearchResults.as_view(), name="search-results"),
    path(
        "searches/<uuid:code>/faces/<int:face>/candidates/<int:rank>/",
        search_api.CandidateDetail.as_view(),
        name="candidate-detail",
    ),
    path(
        "searches/<uuid:code>/faces/<int:face>/candidates/<int:rank>/mark/",
        search_api.CandidateMark.as_view(),
        name="candidate-mark",
    ),
    path(
        "searches/<uuid:code>/faces/<int:face>/candidates/<int:rank>/verify/",
        search_api.LeadVerify.as_view(),
        name="lead-verify",
    ),
    path(
        "searches/<uuid:code>/faces/<int:face>/candidates/<int:rank>/decide/",
        search_api.LeadDecide.as_view(),
        name="lead-decide",
    ),
    path("galleries/", search_api.GalleryList.as_view(), name="gallery-list"),
    path("galleries/<uuid:code>/", search_api.GalleryDetail.as_view(), name="gallery-detail"),
    path("galleries/<uuid:code>/photos/", search_api.GalleryPhotos.as_view(), name="gallery-photos"),
    path("galleries/<uuid:code>/nist/", search_api.GalleryNist.as_view(), name="gallery-nist"),
    path("tokens/", accounts_api.TokenList.as_view(), name="token-list"),
    path("tokens/<uuid:code>/revoke/", accounts_api.TokenRevoke.as_view(), name="token-revoke"),
]
# Lawful use (issue 19): each feature keeps its own URL module.
v1 += (
    lawful_urls.api_patterns
    + watchlist_urls.api_patterns
    + lineup_urls.api_patterns
    + usage_urls.api_patterns
    + disclosure_urls.api_patterns
)

urlpatterns = [
    path("v1/", include(v1)),
    re_path(r"^.*$", api.api_not_found, name="not-found"),
]
