"""Per-gateway concurrency limits across all workers: a counting semaphore made of database rows.

Each gateway has `max_concurrency` GatewaySlot rows. Taking one is a conditional UPDATE ("set the holder
where the slot is free or its lease has expired"), which is atomic on PostgreSQL (a concurrent update
re-checks the condition once the other commits) and on SQLite (writes are serialised), so two workers
never hold the same slot and no Redis is needed. A transfer takes a slot on its source and on its
destination, both or neither, so two transfers never wait on each other's half.

A running transfer may also take extra slots for parallel streams to a gateway (`acquire_extra`), only
those free at that moment and never waiting for one: each parallel association or HTTP stream holds a
slot, so a gateway never sees more than its max_concurrency from the portal. They are held under
derived names (`<holder>+<n>`) and renewed and released with the holder's own.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from directory.models import Gateway

from .models import FINISHED, GatewaySlot, Transfer

EXTRA_SEPARATOR = "+"  # between a holder's name and the number of one of its extra slots


def lease() -> timedelta:
    return timedelta(seconds=settings.TRANSFER_LEASE_SECONDS)


def acquire_for_transfer(transfer_id: int, holder: str) -> bool:
    """Slots on the transfer's source and destination gateways for `holder`; False if either is full.
    A transfer that has already ended needs none (the engine only notes that it is over)."""
    row = Transfer.objects.filter(pk=transfer_id).values("status", "source_gateway_id", "destination_gateway_id")
    row = row.first()
    if row is None or row["status"] in FINISHED:
        return True
    return acquire([row["source_gateway_id"], row["destination_gateway_id"]], holder, transfer_id=transfer_id)


def acquire(gateway_ids: list[int], holder: str, *, transfer_id: int | None = None) -> bool:
    """One slot on each gateway (all or none): a holder never keeps half and waits for the rest."""
    for gateway_id in sorted(set(gateway_ids)):
        if not _take(gateway_id, holder, transfer_id):
            release(holder)
            return False
    return True


def _take(gateway_id: int, holder: str, transfer_id: int | None) -> bool:
    limit = Gateway.objects.filter(pk=gateway_id).values_list("max_concurrency", flat=True).first() or 1
    GatewaySlot.objects.bulk_create(
        [GatewaySlot(gateway_id=gateway_id, number=n) for n in range(limit)], ignore_conflicts=True
    )
    now = timezone.now()
    slots = GatewaySlot.objects.filter(gateway_id=gateway_id, number__lt=limit)
    if slots.filter(holder=holder).update(expires_at=now + lease()):
        return True  # already ours (this task's previous attempt at the same transfer)
    free = Q(holder="") | Q(expires_at__lt=now)
    for pk in slots.filter(free).order_by("number").values_list("pk", flat=True):
        taken = GatewaySlot.objects.filter(free, pk=pk).update(
            holder=holder, transfer_id=transfer_id, acquired_at=now, expires_at=now + lease()
        )
        if taken:
            return True
    return False


def acquire_extra(gateway_id: int, holder: str, wanted: int, *, transfer_id: int | None = None) -> int:
    """Up to `wanted` more slots on one gateway for `holder`'s parallel streams, as many as are free
    now (no waiting: the streams are an optimisation, one slot is enough to make progress)."""
    taken = 0
    for n in range(1, wanted + 1):
        if not _take(gateway_id, _extra(holder, n), transfer_id):
            break
        taken += 1
    return taken


def _extra(holder: str, n: int) -> str:
    return f"{holder}{EXTRA_SEPARATOR}{n}"


def _held_by(holder: str) -> Q:
    return Q(holder=holder) | Q(holder__startswith=f"{holder}{EXTRA_SEPARATOR}")


def renew(holder: str) -> None:
    """Called with every heartbeat: the slots live as long as the transfer's lease."""
    GatewaySlot.objects.filter(_held_by(holder)).update(expires_at=timezone.now() + lease())


def release(holder: str) -> None:
    GatewaySlot.objects.filter(_held_by(holder)).update(holder="", transfer=None, acquired_at=None, expires_at=None)


def in_use(gateway_id: int) -> int:
    """Slots held now (a lapsed lease counts as free)."""
    return GatewaySlot.objects.filter(gateway_id=gateway_id, expires_at__gte=timezone.now()).exclude(holder="").count()
