"""Stages other apps add to the engine, so that transfers never imports them (they sit above it).

Reconciliation registers one in its AppConfig.ready(): it rewrites each batch for the destination, or
holds it, just before the batch is stored, and keeps a transfer with held instances from finishing.
Copies registers two around it: coercion on arrival (order 10, before reconciliation, so held files wait
already coerced) and the register's note of what goes out (order 90, after every change).
"""

from __future__ import annotations

from typing import Protocol

from dicomkit import GatewayClient, RetrievedInstance

from .models import Transfer


class ArrivalStage(Protocol):
    def prepare_batch(
        self, transfer: Transfer, destination: GatewayClient, batch: list[RetrievedInstance]
    ) -> list[RetrievedInstance]:
        """Just before the batch is stored: change what must change, keep back what must wait (and record
        that in the ledger); returns what to send now."""
        ...

    def holds_back(self, transfer: Transfer, owner: str) -> bool:
        """Where the engine would finish: True when the transfer must wait instead (the stage has set its
        status, and will finish it through transfers.completion later)."""
        ...


_stages: list[tuple[int, ArrivalStage]] = []
DEFAULT_ORDER = 50


def register(stage: ArrivalStage, order: int = DEFAULT_ORDER) -> None:
    """Add a stage (once: a second registration of the same stage changes nothing). Stages run by `order`,
    lowest first; equal orders in the order they were registered."""
    if all(existing != stage for _, existing in _stages):
        _stages.append((order, stage))
        _stages.sort(key=lambda entry: entry[0])


def prepare_batch(
    transfer: Transfer, destination: GatewayClient, batch: list[RetrievedInstance]
) -> list[RetrievedInstance]:
    for _, stage in _stages:
        batch = stage.prepare_batch(transfer, destination, batch)
    return batch


def holds_back(transfer: Transfer, owner: str) -> bool:
    return any(stage.holds_back(transfer, owner) for _, stage in _stages)
