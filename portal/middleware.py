"""Headers that every response of the portal carries, whatever made it: a page, JSON, an image, a file,
a redirect or an error page."""

from django.utils.cache import patch_cache_control

# The portal uses none of these browser features; a page that is somehow made to ask for one is refused.
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "autoplay",
        "camera",
        "display-capture",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "usb",
    )
)


class ResponseHeadersMiddleware:
    """Permissions-Policy, and no-store: every response may hold case data, personal data or a sign-in form,
    and none may be kept by a browser or a proxy; static files too, served by WhiteNoise inside this middleware
    (portal/settings.py says why they are not cached either)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        patch_cache_control(response, private=True, no_store=True)
        return response


class MediaUnavailableMiddleware:
    """A page whose photo or file the object store could not store or read: 503 with a plain message, never a
    server error. The services stored nothing half (docs/object-storage.md); the API answers problem+json itself."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        from django.http import JsonResponse
        from django.shortcuts import render

        from portal.object_storage import MediaUnavailable

        if not isinstance(exception, MediaUnavailable):
            return None
        if "application/json" in request.headers.get("Accept", ""):
            # The pages' scripts that post one file at a time show each answer's errors.
            message = f"{exception} Nothing of it was stored; try again in a few minutes."
            return JsonResponse({"ok": False, "errors": {"media": message}}, status=503)
        return render(request, "media_unavailable.html", {"reason": str(exception)}, status=503)
