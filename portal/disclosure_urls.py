"""URLs of the disclosure packet (included by portal/urls.py) and of its REST API (portal/api_urls.py)."""

urlpatterns = []
api_patterns = []
