"""Template context: the signed-in user's memberships and the staff navigation they may use."""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest
from django.urls import reverse

from . import permissions as perms


@dataclass(frozen=True)
class NavItem:
    label: str
    href: str
    current: bool


def _items(request: HttpRequest) -> list[NavItem]:
    """Only the pages the user's roles let them use (a link nobody could use is noise), in the order of
    the work: home, find, send, ask, file, share; then oversight and the directory."""
    user = request.user
    wanted: list[tuple[str, str, bool]] = [
        ("Home", reverse("home"), True),
        ("Studies", reverse("exchange:study_search_home"), bool(perms.study_search_trust_ids(user))),
        ("Transfers", reverse("transfers:list"), True),
        ("Requests", reverse("pulls:list"), perms.may_see_requests(user)),
        ("Reconciliation", reverse("reconciliation:queue"), perms.may_see_reconciliation(user)),
        ("Share links", reverse("sharing:list"), True),
        ("Operations", reverse("transfers:operations"), perms.may_view_transfer_operations(user)),
        ("Copies", reverse("copies:register"), perms.may_read_copies_register(user)),
        ("Audit", reverse("audit:search"), perms.may_view_audit(user)),
        ("Directory", reverse("directory:trust_list"), True),
        ("Migrations", reverse("region:migrations"), perms.may_run_migrations(user)),
        ("Admin", reverse("admin:index"), user.is_staff),
    ]
    path = request.path
    items = []
    for label, href, allowed in wanted:
        if not allowed:
            continue
        current = path == href if href == "/" else path.startswith(href)
        items.append(NavItem(label, href, current))
    # /transfers/operations/ lies under /transfers/: the longer match is the page the user is on.
    best = max((i for i in items if i.current), key=lambda i: len(i.href), default=None)
    return [NavItem(i.label, i.href, i is best) for i in items]


def memberships(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "my_memberships": user.memberships.select_related("trust").order_by("trust__name", "role"),
        "is_regional_admin": perms.is_regional_admin(user),
        "nav_items": _items(request),
    }
