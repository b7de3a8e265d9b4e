"""URLs of the lawful-use pages (included by search/urls.py) and of its REST API (included by portal/api_urls.py)."""

from django.urls import path

from search import lawful_api, lawful_views

urlpatterns = [
    path("lawful-use/", lawful_views.lawful_use_page, name="lawful-use"),
    path("cases/<uuid:case_code>/authorisation/grant/", lawful_views.authorisation_grant, name="authorisation-grant"),
    path(
        "cases/<uuid:case_code>/authorisation/refuse/", lawful_views.authorisation_refuse, name="authorisation-refuse"
    ),
]
api_patterns = [
    path("policy/", lawful_api.PolicyDetail.as_view(), name="policy"),
    path("cases/<uuid:code>/authorisations/", lawful_api.CaseAuthorisations.as_view(), name="case-authorisations"),
    path(
        "cases/<uuid:code>/authorisations/grant/",
        lawful_api.AuthorisationGrant.as_view(),
        name="authorisation-grant",
    ),
    path(
        "cases/<uuid:code>/authorisations/refuse/",
        lawful_api.AuthorisationRefuse.as_view(),
        name="authorisation-refuse",
    ),
]
