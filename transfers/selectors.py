"""Reading transfers: what a user may see, filtered as the API asks, with progress counted in the database."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet, Sum

from accounts import permissions as perms

from .models import InstanceState, Transfer


def transfer_list(*, user, direction: str = "", status: str = "") -> QuerySet[Transfer]:
    queryset = perms.visible_transfers(user, with_progress(Transfer.objects.all()))
    if direction in ("incoming", "outgoing"):
        trusts = perms.member_trust_ids(user)
        field = "destination_id__in" if direction == "incoming" else "source_id__in"
        queryset = queryset.filter(**{field: trusts})
    if status:
        queryset = queryset.filter(status__in=status.split(","))
    # Meta.ordering does not apply to aggregating queries; pages need a stable order.
    return queryset.order_by("-created_at", "-pk")


def with_progress(queryset: QuerySet[Transfer]) -> QuerySet[Transfer]:
    stored = Q(instances__state=InstanceState.STORED)
    return queryset.select_related("source", "destination", "requested_by").annotate(
        instances_total=Count("instances"),
        instances_done=Count("instances", filter=stored),
        instances_failed=Count("instances", filter=Q(instances__state=InstanceState.FAILED)),
        bytes_done=Sum("instances__size", filter=stored, default=0),
    )
