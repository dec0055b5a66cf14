"""Refuse control characters (NUL and the like) anywhere in a request, with 400, before any view runs.

PostgreSQL cannot store NUL in text at all (`DataError`, a 500 on every endpoint that saved or
filtered on such a value), and no field of the portal has a use for other control characters. One
place checks the path, the query string and form or JSON bodies, so no serializer, form or filter
can forget to. Tab, line feed and carriage return stay allowed in bodies (a clinical reason may
have paragraphs); in the address and the query string nothing needs them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

# C0 controls, DEL and C1 controls (Unicode category Cc).
_IN_ADDRESS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_IN_BODY = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_MACHINE_PREFIXES = ("/api/", "/dicomweb/", "/fhir/")


def _json_strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every (location, string) in a parsed JSON document, keys included."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, list):
        for item in value:
            yield from _json_strings(item, where)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield f"field {key!r}" if where == "the body" else where, key
            yield from _json_strings(item, f"field {key!r}" if where == "the body" else where)


def control_character_problem(request: HttpRequest) -> str | None:
    """Where the request carries a control character it must not, or None."""
    if _IN_ADDRESS.search(request.path_info):
        return "the address"
    for key, values in request.GET.lists():
        if _IN_ADDRESS.search(key) or any(_IN_ADDRESS.search(v) for v in values):
            return f"query parameter {key!r}"
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    content_type = request.content_type or ""
    if content_type in _FORM_TYPES:
        for key, values in request.POST.lists():
            if _IN_BODY.search(key) or any(_IN_BODY.search(v) for v in values):
                return f"field {key!r}"
    elif content_type == "application/json" or content_type.endswith("+json"):
        try:
            document = json.loads(request.body)
        except ValueError:
            return None  # not JSON at all: the parser answers 400 with its own reason
        for where, text in _json_strings(document, "the body"):
            if _IN_BODY.search(text):
                return where
    return None


class ControlCharacterMiddleware:
    """400 for a control character in the path, the query string or a form/JSON field."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        where = control_character_problem(request)
        if where is None:
            return self.get_response(request)
        message = f"Control characters (such as NUL) are not allowed in {where}."
        if request.path_info.startswith(_MACHINE_PREFIXES):
            return JsonResponse({"detail": message}, status=400)
        return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")
