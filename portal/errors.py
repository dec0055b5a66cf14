"""The portal's own "page not found", also under DEBUG (the demo runs with DEBUG on, and showed Django's
technical 404 page, with the URL map, to anyone who mistyped an address)."""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import Resolver404, resolve


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "404.html", status=404)


def unmatched(request: HttpRequest) -> HttpResponse:
    """The last URL pattern: what nothing else matched. A path missing only its final slash still goes
    where CommonMiddleware's APPEND_SLASH would have sent it (this pattern stops that middleware)."""
    if settings.APPEND_SLASH and not request.path.endswith("/"):
        try:
            resolved = resolve(request.path + "/")
        except Resolver404:
            resolved = None
        if resolved is not None and resolved.func is not unmatched and request.method in ("GET", "HEAD"):
            query = request.META.get("QUERY_STRING", "")
            return HttpResponseRedirect(request.path + "/" + (f"?{query}" if query else ""))
    return not_found(request)


class NotFoundMiddleware:
    """A view's Http404 becomes the portal's page even under DEBUG (DRF answers its own 404s in JSON)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, Http404) and settings.DEBUG:
            return not_found(request, exception)
        return None
