"""URLs of the usage pages (included by search/urls.py) and of its REST API (included by portal/api_urls.py)."""

urlpatterns = []
api_patterns = []
