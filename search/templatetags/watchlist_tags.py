"""What the results page offers per face for the watch-list (search/watchlist.py decides)."""

from django import template

from search import watchlist

register = template.Library()


@register.simple_tag
def watchlist_offer(probe_face, user):
    return watchlist.watchlist_offer(probe_face=probe_face, user=user)
