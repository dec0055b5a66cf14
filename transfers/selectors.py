"""Reading transfers: what a user may see, filtered as the API asks, with progress counted in the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, F, IntegerField, Min, Q, QuerySet, Sum
from django.db.models.functions import Greatest
from django.http import Http404
from django.utils import timezone

from accounts import permissions as perms
from directory import slots as gateway_slots
from directory.models import Gateway

from .models import BULK, DELIVERED, RUNNING, InstanceState, Status, Transfer


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
    delivered = Q(instances__state__in=DELIVERED)
    return queryset.select_related("source", "destination", "requested_by").annotate(
        # The plan's count (the source's series-level counts) until the ledger has a row per instance.
        instances_total=Greatest(Count("instances"), F("instances_planned"), output_field=IntegerField()),
        instances_done=Count("instances", filter=delivered),
        instances_failed=Count("instances", filter=Q(instances__state=InstanceState.FAILED)),
        bytes_done=Sum("instances__size", filter=stored, default=0),
    )


# --- operations: an imaging manager's view of their trust's gateways ----------------------------------

RECENT_PROBLEMS = timedelta(days=7)


@dataclass
class GatewayQueue:
    gateway: Gateway
    queued: int
    running: int
    oldest_waiting: datetime | None
    # Of queued and running: background copies (forwarding to the regional archive), which wait behind
    # every clinician's transfer.
    background_queued: int = 0
    background_running: int = 0
    slots_in_use: int = 0
    in_use_by_work: dict[str, int] = field(default_factory=dict)  # transfers, staging, filing, searches...
    waiting: int = 0  # work of any kind waiting for one of its slots


@dataclass
class Operations:
    gateways: list[GatewayQueue]
    stuck: QuerySet[Transfer]
    problems: QuerySet[Transfer]


def transfer_operations(*, user, now: datetime | None = None) -> Operations:
    """Per gateway of the user's trusts: the queue; then transfers whose worker went silent (running, no
    heartbeat for a lease), and those that failed or were partly sent in the last week."""
    now = now or timezone.now()
    trusts = perms.transfer_operations_trust_ids(user)
    gateways = Gateway.objects.filter(trust_id__in=trusts).select_related("trust").order_by("trust__ods_code", "name")
    queues = []
    for gateway in gateways:
        using = Transfer.objects.filter(Q(source_gateway=gateway) | Q(destination_gateway=gateway))
        figures = using.aggregate(
            queued=Count("pk", filter=Q(status=Status.QUEUED)),
            running=Count("pk", filter=Q(status__in=RUNNING)),
            oldest_waiting=Min("created_at", filter=Q(status=Status.QUEUED)),
            background_queued=Count("pk", filter=Q(status=Status.QUEUED, priority=BULK)),
            background_running=Count("pk", filter=Q(status__in=RUNNING, priority=BULK)),
        )
        by_work = gateway_slots.in_use_by_work(gateway.pk)
        queues.append(
            GatewayQueue(
                gateway=gateway,
                slots_in_use=sum(by_work.values()),
                in_use_by_work=by_work,
                waiting=gateway_slots.waiting(gateway.pk),
                **figures,
            )
        )
    mine = with_progress(Transfer.objects.all()).filter(
        Q(source_gateway__trust_id__in=trusts) | Q(destination_gateway__trust_id__in=trusts)
    )
    stale = now - timedelta(seconds=settings.TRANSFER_LEASE_SECONDS)
    stuck = mine.filter(status__in=RUNNING).filter(Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True))
    problems = mine.filter(
        status__in=(Status.FAILED, Status.COMPLETED_WITH_ERRORS), completed_at__gte=now - RECENT_PROBLEMS
    )
    return Operations(
        gateways=queues,
        stuck=stuck.order_by("heartbeat_at", "pk"),
        problems=problems.order_by("-completed_at", "-pk"),
    )


def visible_in_order(*, user, ids: list[int]) -> list[Transfer]:
    """The transfers with these IDs, all visible to the user, or Http404: a transfer of another trust is
    not even confirmed to exist (and one unknown ID makes the whole request unknown, changing nothing)."""
    ids = list(dict.fromkeys(ids))
    found = {t.pk: t for t in perms.visible_transfers(user, Transfer.objects.filter(pk__in=ids))}
    if len(found) != len(ids):
        raise Http404("Not found.")
    return [found[i] for i in ids]
