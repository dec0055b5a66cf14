"""Reading requests: what a user may see, filtered as the API and pages ask."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts import permissions as perms

from .models import PullRequest


def request_list(*, user, direction: str = "", status: str = "") -> QuerySet[PullRequest]:
    queryset = perms.visible_requests(
        user,
        PullRequest.objects.select_related(
            "requesting_trust",
            "source_trust",
            "requested_by",
            "decided_by",
            "transfer__source",
            "transfer__destination",
        ),
    )
    if direction in ("incoming", "outgoing"):
        trusts = perms.member_trust_ids(user)
        field = "source_trust_id__in" if direction == "incoming" else "requesting_trust_id__in"
        queryset = queryset.filter(**{field: trusts})
    if status:
        queryset = queryset.filter(status__in=status.split(","))
    return queryset.order_by("-created_at", "-pk")
