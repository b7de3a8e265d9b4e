"""URLs of the disclosure packet (included by portal/urls.py) and of its REST API (portal/api_urls.py)."""

from django.urls import path

from portal import disclosure_views

urlpatterns = [
    path("cases/<uuid:code>/disclosure.zip", disclosure_views.case_disclosure, name="case-disclosure"),
]
api_patterns = [
    path("cases/<uuid:code>/disclosure/", disclosure_views.CaseDisclosure.as_view(), name="case-disclosure"),
]
