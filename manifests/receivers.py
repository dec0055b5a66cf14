"""Following transfers: a transfer that delivered studies gets their manifests made, by a task (listing the
study at the destination takes one of its gateway's slots, never the transfer worker's time)."""

from __future__ import annotations

from typing import Any

from transfers.models import Transfer

from .services import DELIVERED


def manifest_on_transfer_end(sender: Any, transfer_id: int, **kwargs: Any) -> None:
    from .tasks import make_manifests

    # transfer_ended is sent after the final state has committed: send at once.
    if Transfer.objects.filter(pk=transfer_id, status__in=DELIVERED).exists():
        make_manifests.delay(transfer_id)
