"""What stops a pass of the engine: the task decides what each means (wait, retry, fail, nothing)."""

from __future__ import annotations

from dicomkit import GatewayError
from directory.services import agreement_allows

from ..models import Transfer


class Busy(Exception):
    """Another worker holds a fresh lease on this transfer."""


class NoSlot(Exception):
    """The source or destination gateway is at its max_concurrency: wait, this is not a failure."""


class Stopped(Exception):
    """The transfer was cancelled, or our lease passed to another worker."""


class StoppedAtRefusal(Exception):
    """The source ended a retrieve with a failure after we refused an instance it sent (Orthanc stops a
    C-MOVE at the first refused sub-operation): that instance is failed; ask again for the rest."""


class TransientTransferError(GatewayError):
    """Something may work later (instances not delivered yet, refusals a PACS may lift)."""


class AgreementWithdrawn(GatewayError):
    """The sharing agreement no longer lets the source send to the destination: no more images go."""

    def __init__(self, transfer: Transfer) -> None:
        super().__init__(
            f"The sharing agreement between {transfer.source.ods_code} and {transfer.destination.ods_code} no "
            "longer allows this transfer; nothing more was sent.",
            permanent=True,
        )


def check_agreement(transfer: Transfer) -> None:
    """Checked before each pass and while instances flow: a withdrawn agreement stops the sending."""
    if not agreement_allows(transfer.source, transfer.destination):
        raise AgreementWithdrawn(transfer)
