"""Small pieces every API module shares: service errors as DRF errors, and the acting party."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

T = TypeVar("T")

# Primary keys are 64-bit (BigAutoField): a larger number cannot name an object, and SQLite raises
# OverflowError (a 500) when one reaches a query.
MAX_OBJECT_ID = 2**63 - 1


class ObjectIdField(serializers.IntegerField):
    """An object's database ID in a request body: 1 to MAX_OBJECT_ID."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_OBJECT_ID)
        super().__init__(**kwargs)


def run_service(service: Callable[..., T], **kwargs: Any) -> T:
    """Call a service; its model validation errors become 400 field errors (its transaction rolled back)."""
    try:
        return service(**kwargs)
    except DjangoValidationError as exc:
        if hasattr(exc, "error_dict"):
            detail = {
                ("non_field_errors" if field == NON_FIELD_ERRORS else field): messages
                for field, messages in exc.message_dict.items()
            }
            raise serializers.ValidationError(detail) from exc
        raise serializers.ValidationError({"detail": exc.messages}) from exc


def choice_param(request: Any, name: str, choices: Iterable[str], *, several: bool = False) -> str:
    """A filter in the query string limited to `choices` (comma-separated when `several`); else 400.

    A misspelt filter must not answer as if it matched nothing (or everything).
    """
    value = request.query_params.get(name, "")
    if not value:
        return ""
    allowed = list(choices)
    wrong = [part for part in (value.split(",") if several else [value]) if part not in allowed]
    if wrong:
        raise serializers.ValidationError({name: f"Choose from {', '.join(allowed)}, not {', '.join(wrong)!r}."})
    return value
