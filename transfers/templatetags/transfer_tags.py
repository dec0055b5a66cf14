"""Template helpers for the transfer pages and the push form on the study search results."""

from __future__ import annotations

from django import template

from accounts import permissions as perms

register = template.Library()


@register.filter
def may_push_from(user, trust) -> bool:
    return perms.may_push_from(user, trust.pk)


@register.filter
def megabytes(value) -> str:
    return f"{(value or 0) / 1_000_000:.1f}"


@register.filter
def may_run_transfers(user) -> bool:
    """The Operations link: imaging managers of some trust."""
    return perms.may_view_transfer_operations(user)
