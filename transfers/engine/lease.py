"""One worker owns a transfer at a time: a lease (lease_owner + heartbeat_at on the transfer's row) that
the worker renews while it runs, and that another worker may take over once it has gone silent for
TRANSFER_LEASE_SECONDS.

One heartbeat, `Lease`, used only by the thread that runs the transfer (the only one that uses the
database). The loops that move instances call `beat()` per batch; a single long gateway call (a C-FIND or
QIDO-RS that lists thousands of instances) runs in a helper thread through `wait()`, while this thread
goes on renewing the lease and the gateway slots.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..models import FINISHED, Status, Transfer
from . import limits
from .errors import Busy, Stopped, check_agreement

# While instances flow, the lease is renewed at most this often (each renewal is two commits); in
# between, a read per batch still notices a cancellation at once.
BEAT_SECONDS = 1.0
T = TypeVar("T")
log = structlog.get_logger(__name__)


def heartbeat_interval() -> float:
    """How often a waiting worker renews its lease: six times per lease period, at most once a second."""
    return max(1.0, settings.TRANSFER_LEASE_SECONDS / 6)


def claim(transfer_id: int, owner: str) -> Transfer | None:
    """Take the transfer for this worker; None when it has already ended (nothing to do)."""
    with transaction.atomic():
        transfer = Transfer.objects.select_for_update().get(pk=transfer_id)
        if transfer.status in FINISHED:
            return None
        now = timezone.now()
        fresh = transfer.heartbeat_at and now - transfer.heartbeat_at < timedelta(
            seconds=settings.TRANSFER_LEASE_SECONDS
        )
        if transfer.lease_owner and transfer.lease_owner != owner and fresh:
            raise Busy(transfer.lease_owner)
        check_agreement(transfer)
        transfer.lease_owner = owner
        transfer.heartbeat_at = now
        transfer.attempts += 1
        transfer.started_at = transfer.started_at or now
        if transfer.status == Status.QUEUED:
            transfer.status = Status.RETRIEVING
        transfer.save(update_fields=["lease_owner", "heartbeat_at", "attempts", "started_at", "status"])
        return transfer


def release(transfer_id: int, owner: str) -> None:
    Transfer.objects.filter(pk=transfer_id, lease_owner=owner).update(lease_owner="")


def note_waiting(transfer_id: int) -> None:
    """A transfer waiting for a gateway slot is alive: its heartbeat says so, so the sweeper does not
    queue it again and again. A live worker's lease is left alone; a lease silent for a whole lease
    period belongs to a dead worker (claim() would take it over), so it is dropped rather than made
    to look fresh, and the waiting task becomes the transfer's carrier."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.TRANSFER_LEASE_SECONDS)
    waiting = Transfer.objects.filter(pk=transfer_id).exclude(status__in=FINISHED)
    waiting.filter(Q(lease_owner="") | Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=stale)).update(
        lease_owner="", heartbeat_at=now
    )


class Lease:
    """This worker's hold on a claimed transfer. Every method raises Stopped once the transfer was
    cancelled or another worker took it over."""

    def __init__(self, transfer: Transfer, owner: str) -> None:
        self.transfer, self.owner = transfer, owner
        self.last = float("-inf")

    def _live(self) -> Any:
        return Transfer.objects.filter(pk=self.transfer.pk, lease_owner=self.owner).exclude(status__in=FINISHED)

    def renew(self, status: str | None = None) -> None:
        """Write the heartbeat (and a new status, if given), and keep the gateway slots."""
        values: dict[str, Any] = {"heartbeat_at": timezone.now()}
        if status:
            values["status"] = status
        if not self._live().update(**values):
            raise Stopped
        limits.renew(self.owner)
        if status:
            self.transfer.status = status
        self.last = time.monotonic()

    def beat(self) -> None:
        """Per batch: renew every BEAT_SECONDS (then also looking at the agreement); otherwise only read
        whether the transfer is still ours and running."""
        if time.monotonic() - self.last >= BEAT_SECONDS:
            self.renew()
            check_agreement(self.transfer)
            return
        if not self._live().exists():
            raise Stopped

    def wait(self, call: Callable[[], T]) -> T:
        """Run one long gateway call (it must not use the database) in a helper thread, renewing the lease
        while it runs. Stopped, if the transfer stops meanwhile, is raised once the call has returned:
        nothing of a pass may still talk to a gateway once its slots are released."""
        outcome: dict[str, Any] = {}

        def target() -> None:
            try:
                outcome["value"] = call()
            except BaseException as exc:  # noqa: BLE001 - raised again in this thread
                outcome["error"] = exc

        thread = threading.Thread(target=target, name="transfer-call", daemon=True)
        thread.start()
        self.join(thread)
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    def join(self, thread: threading.Thread) -> None:
        """Wait for a helper thread to end, renewing the lease meanwhile (see `wait`)."""
        stopped = False
        while True:
            thread.join(timeout=heartbeat_interval())
            if not thread.is_alive():
                break
            if stopped:
                continue
            try:
                self.renew()
            except Stopped:
                stopped = True
            except Exception:  # the database blinked: the next renewal may work, and the call goes on
                log.warning("lease_renewal_failed", transfer_id=self.transfer.pk, exc_info=True)
        if stopped:
            raise Stopped
