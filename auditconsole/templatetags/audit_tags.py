"""Template helpers for the IG console and the navigation bar."""

from __future__ import annotations

from django import template
from django.http import QueryDict

from accounts import permissions as perms
from audit.codes import EventID, display
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


@register.filter
def parties(event) -> str:
    """Which way the images went, "From → To". Events name the trust holding the images first (`trust`) and
    the other party second, except an import (110107), which is recorded at the trust that took the
    images in: its sender is the peer, so it reads peer → trust (it was shown reversed)."""
    trust, peer = event.trust or "", event.peer_trust or ""
    if not peer:
        return trust or "—"
    if str(event.event_id) == EventID.IMPORT:
        return f"{peer} → {trust}"
    return f"{trust} → {peer}"


@register.simple_tag
def date_part(params: QueryDict, name: str, part: str) -> str:
    """A day, month or year box's value: as typed, or from the ISO date a link or export carried."""
    typed = params.get(f"{name}_{part}")
    if typed is not None:
        return typed
    iso = (params.get(name) or "").split("-")
    if len(iso) == 3:
        return {"year": iso[0], "month": iso[1].lstrip("0"), "day": iso[2].lstrip("0")}[part]
    return ""
