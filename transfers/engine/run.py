"""One pass over a transfer: claim it, hold its gateway slots, move each study (what the destination
already holds is not sent), record the plan, give what did not arrive another pass or fail it, check the
destination's counts, and end it (transfers.completion)
unless a registered stage (reconciliation) holds it back."""

from __future__ import annotations

import errno
import shutil

from django.conf import settings

from directory.gateways import gateway_client
from directory.models import Gateway

from .. import completion, stages
from ..models import Status, Transfer
from . import ledger, limits
from .errors import Stopped, StoppedAtRefusal, TransientTransferError
from .lease import Lease, claim, release
from .pipeline import Clients, move_study
from .plan import Planner
from .spool import disk_error, every_spool, spool_dir
from .verification import verify


def clients_for(transfer: Transfer) -> Clients:
    return Clients(gateway_client(transfer.source_gateway), gateway_client(transfer.destination_gateway))


def run(transfer_id: int, *, owner: str, clients: Clients | None = None) -> str:
    """One pass over a transfer, holding a slot on each of its gateways (their max_concurrency, across
    all workers). Returns its status; raises NoSlot when either gateway is at its limit (the task asks
    again shortly), GatewayError (see `.permanent`) or Busy."""
    with limits.gateway_slots(transfer_id, owner):
        return _run(transfer_id, owner=owner, clients=clients)


def _run(transfer_id: int, *, owner: str, clients: Clients | None = None) -> str:
    transfer = claim(transfer_id, owner)
    if transfer is None:
        return "already finished"
    folder = spool_dir(transfer_id, shared=transfer.source_gateway.retrieve_method == Gateway.RetrieveMethod.C_MOVE)
    for leftovers in every_spool(transfer_id):  # of a dead worker's pass: retrieved again
        shutil.rmtree(leftovers, ignore_errors=True)
    lease = Lease(transfer, owner)
    planner: Planner | None = None
    try:
        clients = clients or clients_for(transfer)
        # The source's series-level counts are asked for while the study already flows (the ledger gains
        # each instance as it arrives): the query adds nothing to the transfer's time.
        planner = Planner(transfer, clients.source, lease)
        streams = 1 + limits.extra_store_streams(transfer, owner, settings.TRANSFER_STORE_STREAMS - 1)
        for study_uid in transfer.study_instance_uids:
            try:
                while True:
                    try:
                        move_study(transfer, lease, clients, study_uid, folder, streams, planner)
                        break
                    except StoppedAtRefusal:
                        continue  # each time one more instance is failed: this ends
            except OSError as exc:  # the worker's own disk, not a gateway: the next pass may find room
                if not disk_error(exc):
                    raise
                full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
                what = "has no space left" if full else f"could not be written ({exc.strerror or exc})"
                raise TransientTransferError(f"The worker's spool folder {folder} {what}; trying again.") from exc
        planner.record()
        ledger.give_up_or_retry_undelivered(transfer)
        lease.renew(Status.VERIFYING)
        verify(transfer, clients.destination, lease)
        if stages.holds_back(transfer, owner):
            return Status.AWAITING_RECONCILIATION
        return finish(transfer, owner)
    except Stopped:
        completion.record_stopped(transfer_id, owner)
        return "stopped"
    finally:
        if planner is not None:  # nothing of this run may talk to a gateway once its slots are released
            planner.close()
        shutil.rmtree(folder, ignore_errors=True)
        release(transfer_id, owner)


def finish(transfer: Transfer, owner: str) -> str:
    """End the pass's transfer from its ledger (transfers.completion); Stopped if it is no longer ours."""
    status = completion.transfer_complete(transfer.pk, owner=owner)
    if status is None:  # cancelled meanwhile, or another worker holds it now
        raise Stopped
    return status


def fail(transfer_id: int, reason: str) -> None:
    """End the transfer as failed with a reason a person can act on; what was stored stays stored."""
    completion.transfer_fail(transfer_id, reason)
