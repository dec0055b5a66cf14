"""The one way a transfer ends. Only this module moves a transfer to `completed`, `completed_with_errors`,
`failed` or `cancelled`: the engine at the end of a pass or on a permanent error, reconciliation once the
last held study is forwarded, a person (alone or in bulk) cancelling, the retry policy giving up.

Each ending writes the final state and the 110104 DICOM Instances Transferred event in one transaction,
and once that has committed, tells people (`notifications.transfer_finished`) and the apps that follow
transfers (`signals.transfer_ended`: pulls announces a requested study's arrival). A transfer that has
already ended is left alone, so a late or repeated call changes and sends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit import catalogue
from audit.codes import Outcome
from audit.context import system_actor

from . import notifications, signals
from .models import DELIVERED, FINISHED, InstanceState, Status, Transfer

ACTOR = system_actor("transfer worker")
log = structlog.get_logger(__name__)
MAX_LISTED_FAILURES = 200  # instance failures copied into the transfer's errors (the ledger holds them all)


@dataclass(frozen=True)
class Counts:
    """The ledger's tally of a transfer's instances."""

    total: int
    stored: int
    failed: int
    held: int
    present: int = 0  # at the destination before we sent them: delivered, not sent


def ledger_counts(transfer: Transfer) -> Counts:
    states = list(transfer.instances.values_list("state", flat=True))
    return Counts(
        total=max(len(states), transfer.instances_planned),
        stored=states.count(InstanceState.STORED),
        failed=states.count(InstanceState.FAILED),
        held=states.count(InstanceState.HELD),
        present=states.count(InstanceState.ALREADY_PRESENT),
    )


def transfer_complete(transfer_id: int, *, owner: str | None = None) -> str | None:
    """End a transfer whose every instance is stored or failed: `completed`, `completed_with_errors` (some
    stored) or `failed` (none). Returns the final status, or None when it is not this caller's to end:
    `owner` (the engine) must still hold the lease; without one (reconciliation) the transfer must be
    awaiting reconciliation with nothing held any more. Either way one that has ended stays as it is."""
    with transaction.atomic():
        transfer = Transfer.objects.select_for_update().get(pk=transfer_id)
        if transfer.status in FINISHED:
            return None
        if owner is not None and transfer.lease_owner != owner:
            return None
        counts = ledger_counts(transfer)
        if owner is None and (transfer.status != Status.AWAITING_RECONCILIATION or counts.held):
            return None
        failed = transfer.instances.filter(state=InstanceState.FAILED)
        transfer.errors = [e for e in transfer.errors if "sop_instance_uid" not in e] + [
            {"sop_instance_uid": uid, "study_instance_uid": study, "error": error}
            for uid, study, error in failed.values_list("sop_instance_uid", "study_instance_uid", "last_error")[
                :MAX_LISTED_FAILURES
            ]
        ]
        if not transfer.errors:
            transfer.status, outcome = Status.COMPLETED, Outcome.SUCCESS
        elif counts.stored or counts.present:
            transfer.status, outcome = Status.COMPLETED_WITH_ERRORS, Outcome.MINOR_FAILURE
        else:
            transfer.status, outcome = Status.FAILED, Outcome.SERIOUS_FAILURE
        transfer.completed_at = timezone.now()
        transfer.first_transient_error_at, transfer.transient_failures = None, 0
        transfer.save(
            update_fields=["status", "errors", "completed_at", "first_transient_error_at", "transient_failures"]
        )
        _record(transfer, outcome, counts)
        _after_commit(transfer.pk)
    return transfer.status


def transfer_fail(transfer_id: int, reason: str) -> bool:
    """End the transfer as failed with a reason a person can act on; what was stored stays stored and
    everything else is failed with that reason. False when it had already ended."""
    with transaction.atomic():
        transfer = Transfer.objects.select_for_update().get(pk=transfer_id)
        if transfer.status in FINISHED:
            return False
        transfer.instances.exclude(state__in=DELIVERED).update(state=InstanceState.FAILED, last_error=reason)
        transfer.status = Status.FAILED
        transfer.errors = [*transfer.errors, {"error": reason}]
        transfer.completed_at = timezone.now()
        transfer.lease_owner = ""
        transfer.save(update_fields=["status", "errors", "completed_at", "lease_owner"])
        _record(transfer, Outcome.SERIOUS_FAILURE, ledger_counts(transfer), reason)
        _after_commit(transfer.pk)
    return True


def transfer_cancel(transfer: Transfer) -> None:
    """Cancel (in the caller's transaction, holding the row's lock): no more images go. What reached the
    destination goes on the record: now if no worker is running the transfer, else from the worker once
    it has stopped (`record_stopped`), so the count includes the batches it still had on the wire."""
    transfer.status = Status.CANCELLED
    transfer.completed_at = timezone.now()
    transfer.save(update_fields=["status", "completed_at"])
    lease = timedelta(seconds=settings.TRANSFER_LEASE_SECONDS)
    running = transfer.lease_owner and transfer.heartbeat_at and timezone.now() - transfer.heartbeat_at < lease
    if not running:
        _record_cancelled(transfer, "cancelled")
    _after_commit(transfer.pk)


def record_stopped(transfer_id: int, owner: str) -> None:
    """A worker has stopped sending a transfer cancelled while it ran: put what did arrive on the record."""
    with transaction.atomic():
        transfer = Transfer.objects.select_for_update().get(pk=transfer_id)
        if transfer.status != Status.CANCELLED or transfer.lease_owner != owner:
            return  # another worker took it over; that one reports
        _record_cancelled(transfer, "cancelled while sending")


def _record_cancelled(transfer: Transfer, reason: str) -> None:
    counts = ledger_counts(transfer)
    if counts.stored:
        _record(transfer, Outcome.MINOR_FAILURE, counts, reason)


def _record(transfer: Transfer, outcome: int, counts: Counts, reason: str = "") -> None:
    """110104 DICOM Instances Transferred: who, which patient and studies, from where to where, how it went;
    and, in the same transaction, the apps that keep a record of what was stored (the register of copies)."""
    signals.transfer_recorded.send(sender=Transfer, transfer_id=transfer.pk)
    catalogue.TRANSFER_COMPLETED.record(
        actor=ACTOR,
        outcome=outcome,
        trust=transfer.source.ods_code,
        peer_trust=transfer.destination.ods_code,
        study_uids=transfer.study_instance_uids,
        nhs_number=transfer.nhs_number,
        patient_id=transfer.patient_id,
        detail={
            "transfer": transfer.pk,
            "status": transfer.status,
            "instances_total": counts.total,
            "instances_stored": counts.stored,
            "instances_already_present": counts.present,
            "instances_failed": counts.failed,
            "source_gateway": str(transfer.source_gateway),
            "destination_gateway": str(transfer.destination_gateway),
            **({"reason": reason} if reason else {}),
        },
    )


def _after_commit(transfer_id: int) -> None:
    """One callback, run once the final state is committed: a mail server that is down or a listener
    that fails must not undo (or hide) an ended transfer."""

    def tell() -> None:
        notifications.transfer_finished(transfer_id)
        for receiver, result in signals.transfer_ended.send_robust(sender=Transfer, transfer_id=transfer_id):
            if isinstance(result, Exception):
                log.error(
                    "transfer_ended_receiver_failed", transfer_id=transfer_id, receiver=str(receiver), exc_info=result
                )

    transaction.on_commit(tell)
