"""A transfer's slots at its gateways: the transfer engine's names for directory.slots (the one counting
semaphore every kind of work that reaches a PACS shares, see directory/access.py).

A transfer takes a slot on its source and on its destination, both or neither, and may take extra slots
at its destination for parallel store streams. It waits under the subject "transfer <id>", the same on
every try, so a search gives way to it once it has waited a while.
"""

from __future__ import annotations

from directory import slots as gateway_slots
from directory.access import Work
from directory.slots import EXTRA_SEPARATOR, in_use, lease, release, renew

from .models import FINISHED, Transfer

__all__ = ["EXTRA_SEPARATOR", "acquire", "acquire_extra", "acquire_for_transfer", "in_use", "lease", "release", "renew"]


def _subject(transfer_id: int | None) -> str:
    return f"transfer {transfer_id}" if transfer_id is not None else ""


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
    return gateway_slots.acquire(gateway_ids, holder, work=Work.TRANSFER, subject=_subject(transfer_id))


def acquire_extra(gateway_id: int, holder: str, wanted: int, *, transfer_id: int | None = None) -> int:
    """Up to `wanted` more slots on one gateway for `holder`'s parallel streams, as many as are free
    now and none while other work waits for the gateway."""
    return gateway_slots.acquire_extra(gateway_id, holder, wanted, work=Work.TRANSFER, subject=_subject(transfer_id))
