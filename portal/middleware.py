"""Cross-cutting request middleware: the request ID that ties log lines and audit rows together."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import structlog
from django.http import HttpRequest, HttpResponse

_INCOMING_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestIDMiddleware:
    """Accept a sane X-Request-ID from the load balancer or make one; echo it on the response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _INCOMING_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        structlog.get_logger("portal.request").info(
            "request", method=request.method, path=request.path, status=response.status_code
        )
        return response


class NoStoreMiddleware:
    """`Cache-Control: no-store` on everything the portal renders, unless a view chose its own caching.

    Staff pages, API answers and share-link pages carry patient data, and browsers and proxies keep
    cacheable answers on disk. Marking every rendered response is simpler and safer than deciding
    which ones hold patient data (a token-authenticated API call is only known inside DRF). Static
    files never reach this middleware: WhiteNoise, ahead of it, answers them with their own caching.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not response.has_header("Cache-Control"):
            response["Cache-Control"] = "no-store"
        return response
