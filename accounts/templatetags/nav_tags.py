"""Filters deciding which links the staff navigation shows; the rules live in accounts.permissions."""

from __future__ import annotations

from django import template

from accounts import permissions as perms

register = template.Library()


@register.filter
def may_see_requests(user) -> bool:
    return perms.may_see_requests(user)


@register.filter
def may_see_reconciliation(user) -> bool:
    return perms.may_see_reconciliation(user)
