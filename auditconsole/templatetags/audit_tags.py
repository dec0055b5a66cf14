"""Template helpers for the IG console and the navigation bar."""

from __future__ import annotations

from django import template
from django.http import QueryDict

from accounts import permissions as perms
from audit.codes import display
from dicomkit.nhs import format_nhs

register = template.Library()


@register.filter
def can_view_audit(user) -> bool:
    return perms.may_view_audit(user)


@register.filter
def nhs(value: str) -> str:
    """`9434765919` → `943 476 5919`."""
    return format_nhs(value) if value and len(value) == 10 else value


@register.filter
def code_meaning(code: str) -> str:
    return display(code) if code else ""


@register.simple_tag
def with_param(query: QueryDict, **changes: object) -> str:
    """The current query string with some parameters replaced (or removed when given "")."""
    params = query.copy()
    for key, value in changes.items():
        if value in ("", None):
            params.pop(key, None)
        else:
            params[key] = str(value)
    return params.urlencode()
