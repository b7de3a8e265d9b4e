"""Response helpers shared by the apps."""

from django.http import HttpResponse


def private(response: HttpResponse) -> HttpResponse:
    """Mark a response that carries personal data: never cached, never sniffed as another type."""
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
