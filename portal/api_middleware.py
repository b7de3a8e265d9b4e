"""The API takes no session: under /api/ the request has no session user, so a browser's session cookie (the
docs page's "Try it out") neither authenticates an API call nor expires, extends or redirects it."""

from django.contrib.auth.models import AnonymousUser

API_PREFIX = "/api/"


class ApiWithoutSessionMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info.startswith(API_PREFIX):
            request.user = AnonymousUser()
        return self.get_response(request)
