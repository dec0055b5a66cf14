"""Celery tasks: thin. Load by ID, call the engine, decide about retries. State lives in the database."""

from __future__ import annotations

import os
import random
from datetime import timedelta

import structlog
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.utils import timezone

from dicomkit import GatewayError
from portal.enqueue import enqueue_after_commit

from . import engine
from .models import ACTIVE, Status, Transfer

log = structlog.get_logger(__name__)
SLOT_WAIT_SECONDS = 1.0  # before asking again for a slot on a gateway at its max_concurrency


def enqueue(transfer_id: int, queue: str) -> None:
    """Run the transfer on its priority's queue, once the caller's transaction (if any) has committed."""
    enqueue_after_commit(run_transfer, transfer_id, queue=queue)


@shared_task(
    bind=True,
    name="transfers.run_transfer",
    max_retries=None,
    acks_late=True,
    soft_time_limit=settings.TRANSFER_SOFT_TIME_LIMIT,
    time_limit=settings.TRANSFER_TIME_LIMIT,
)
def run_transfer(self, transfer_id: int) -> str:
    queue = (self.request.delivery_info or {}).get("routing_key") or "routine"
    owner = f"{self.request.hostname or 'worker'}:{os.getpid()}:{self.request.id}"
    try:
        status = engine.run(transfer_id, owner=owner)
    except Transfer.DoesNotExist:
        return "no such transfer"
    except engine.NoSlot:
        # A gateway is at its limit: ask again shortly. Not a transient failure, so the retry window
        # does not run, and the heartbeat keeps the sweeper from sending a second message meanwhile.
        engine.note_waiting(transfer_id)
        countdown = SLOT_WAIT_SECONDS * (1 + random.random())  # noqa: S311 - spreads waiters apart
        raise self.retry(countdown=countdown, queue=queue) from None
    except engine.Busy:
        # Another delivery of this task is running (or its worker died moments ago): look again later.
        raise self.retry(countdown=settings.TRANSFER_LEASE_SECONDS / 2, queue=queue) from None
    except GatewayError as exc:
        if exc.permanent:
            engine.fail(transfer_id, str(exc))
            return Status.FAILED
        return _retry_later(self, transfer_id, exc, queue)
    except SoftTimeLimitExceeded as exc:
        # Resumable from the ledger: the next run carries on where this one stopped.
        return _retry_later(self, transfer_id, exc, queue)
    except Exception as exc:
        log.exception("transfer_crashed", transfer_id=transfer_id)
        engine.fail(transfer_id, f"The transfer engine failed unexpectedly ({type(exc).__name__}); see the logs.")
        raise
    log.info("transfer_pass_ended", transfer_id=transfer_id, status=status)
    return status


def _retry_later(task, transfer_id: int, exc: Exception, queue: str) -> str:
    delay = engine.next_retry_delay(transfer_id, exc, jitter=random.random())  # noqa: S311 - not a secret
    if delay is None:
        return Status.FAILED
    log.warning("transfer_retry", transfer_id=transfer_id, delay_s=round(delay, 1), error=str(exc))
    raise task.retry(countdown=delay, queue=queue) from None


@shared_task(name="transfers.sweep_stalled")
def sweep_stalled() -> int:
    """Hand transfers whose worker went silent (or whose message the broker lost) to a worker again."""
    lease = timedelta(seconds=settings.TRANSFER_LEASE_SECONDS)
    now = timezone.now()
    backing_off = timedelta(seconds=settings.TRANSFER_RETRY_MAX_DELAY)  # a retry is already scheduled
    active = Transfer.objects.filter(status__in=ACTIVE)
    stalled = (
        active.filter(first_transient_error_at__isnull=True, heartbeat_at__lt=now - 2 * lease)
        | active.filter(first_transient_error_at__isnull=False, heartbeat_at__lt=now - 2 * lease - backing_off)
        | active.filter(heartbeat_at__isnull=True, created_at__lt=now - 5 * lease)
    )
    count = 0
    for transfer in stalled.only("pk", "priority"):
        enqueue(transfer.pk, transfer.queue)
        count += 1
    return count
