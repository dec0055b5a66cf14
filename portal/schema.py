"""The OpenAPI schema: every operation documents its error answers (the views serving it: schema_views).

The error answers are the portal's rules, not each view's, so they are added here for every operation:
400 (a control character anywhere, a bad filter or field), 401 (no or a refused token), 403 (no second
factor, no permission), 404 where an operation names an object or pages a list, 415 where it takes a
body.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema

_DETAIL = {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}
# Field errors ({"field": ["message"]}) or {"detail": message or [messages]}.
_FIELD_ERRORS = {"type": "object", "additionalProperties": {}}


def _answer(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


class PortalAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        errors = {
            "400": _answer(
                "Invalid input: field errors, a bad filter, or a control character in the request.", _FIELD_ERRORS
            ),
            "401": _answer("No credentials, or a refused (unknown, expired or revoked) API token.", _DETAIL),
            "403": _answer("No second factor enrolled, or not permitted for this user.", _DETAIL),
        }
        if "{" in self.path or self._is_list_view():
            errors["404"] = _answer("No such object for this user, or no such page.", _DETAIL)
        if self.method in ("POST", "PUT", "PATCH"):
            errors["415"] = _answer("The body is not JSON, a form or multipart data.", _DETAIL)
        for code, answer in errors.items():
            responses.setdefault(code, answer)
        return responses
