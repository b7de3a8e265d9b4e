"""URLs of the usage report's page and CSV (included by search/urls.py); the API has none yet."""

from django.urls import path

from search import usage_views

urlpatterns = [
    path("usage/", usage_views.usage_report_page, name="usage-report"),
    path("usage/usage.csv", usage_views.usage_report_csv, name="usage-report-csv"),
]
api_patterns = []
