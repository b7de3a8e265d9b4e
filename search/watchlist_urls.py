"""URLs of the watchlist pages (included by search/urls.py) and of its REST API (included by portal/api_urls.py)."""

from django.urls import path

from search import watchlist_api, watchlist_views

urlpatterns = [
    path(
        "searches/<uuid:code>/faces/<int:face>/watchlist/",
        watchlist_views.watchlist_propose,
        name="watchlist-propose",
    ),
    path("watchlist/", watchlist_views.watchlist_page, name="watchlist"),
    path("watchlist/<uuid:code>/decide/", watchlist_views.watchlist_decide, name="watchlist-decide"),
    path("watchlist/<uuid:code>/end/", watchlist_views.watchlist_end, name="watchlist-end"),
    path("watchlist/alerts/<int:alert>/open/", watchlist_views.watchlist_alert_open, name="watchlist-alert-open"),
]
api_patterns = [path("watchlist/", watchlist_api.WatchlistList.as_view(), name="watchlist-list")]
