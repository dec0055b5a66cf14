"""How the engine shares a PACS with other work, and when it tries again: per-gateway slots
(transfers.slots, within each gateway's max_concurrency, across all workers) and the retry policy
(backoff with jitter within a window). The seam where one gateway-access layer for every kind of PACS
work takes over: the engine uses nothing else of either."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .. import completion, slots
from ..models import FINISHED, Transfer
from .errors import NoSlot


@contextmanager
def gateway_slots(transfer_id: int, owner: str) -> Iterator[None]:
    """A slot on the transfer's source and destination gateways for the length of a pass; NoSlot when
    either is at its limit (the task asks again shortly). Extra store streams taken during the pass
    (`extra_store_streams`) are released with them."""
    if not slots.acquire_for_transfer(transfer_id, owner):
        raise NoSlot(transfer_id)
    try:
        yield
    finally:
        slots.release(owner)


def extra_store_streams(transfer: Transfer, owner: str, wanted: int) -> int:
    """Up to `wanted` more slots at the destination, for parallel store streams; how many were had."""
    return slots.acquire_extra(transfer.destination_gateway_id, owner, wanted, transfer_id=transfer.pk)


def renew(owner: str) -> None:
    """Keep this worker's slots from expiring (with each renewal of its lease)."""
    slots.renew(owner)


def next_retry_delay(transfer_id: int, error: Exception, *, jitter: float) -> float | None:
    """Seconds until the next try after a transient error, or None once the retry window has passed
    (the transfer is then failed). `jitter` in [0, 1) spreads retries of many transfers apart."""
    now = timezone.now()
    with transaction.atomic():
        transfer = Transfer.objects.select_for_update().get(pk=transfer_id)
        if transfer.status in FINISHED:
            return None
        transfer.first_transient_error_at = transfer.first_transient_error_at or now
        transfer.transient_failures += 1
        transfer.save(update_fields=["first_transient_error_at", "transient_failures"])
        elapsed = (now - transfer.first_transient_error_at).total_seconds()
        tries = transfer.transient_failures
    if elapsed >= settings.TRANSFER_RETRY_WINDOW:
        reason = f"Gave up after {tries} tries over {_duration(elapsed)}; last error: {error}"
        completion.transfer_fail(transfer_id, reason)
        return None
    delay = min(settings.TRANSFER_RETRY_MAX_DELAY, settings.TRANSFER_RETRY_BASE_DELAY * 2 ** (tries - 1))
    return float(delay / 2 + delay / 2 * jitter)


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"
