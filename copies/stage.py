"""The engine's last stage (transfers.stages, order 90): each batch about to be stored is noted in the
register as copies on their way, with the identity the bytes carry after reconciliation and coercion."""

from __future__ import annotations

from dicomkit import GatewayClient, RetrievedInstance
from transfers.models import Transfer

from . import services


class CopyNote:
    def prepare_batch(
        self, transfer: Transfer, destination: GatewayClient, batch: list[RetrievedInstance]
    ) -> list[RetrievedInstance]:
        if batch:
            via = getattr(transfer, "_copies_via", None)
            if via is None:  # once per pass: the engine hands the same Transfer object to every batch
                via = services.transfer_via(transfer)
                transfer._copies_via = via  # type: ignore[attr-defined]
            services.copies_note_batch(transfer, batch, via=via)
        return batch

    def holds_back(self, transfer: Transfer, owner: str) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CopyNote)

    def __hash__(self) -> int:
        return hash(CopyNote)
