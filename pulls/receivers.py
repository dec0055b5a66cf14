"""What pulls hears from the apps below it (connected in PullsConfig.ready)."""

from __future__ import annotations

from typing import Any

from transfers.models import Status, Transfer

from .services import request_notify_arrival


def announce_arrival(sender: type[Transfer], *, transfer_id: int, **kwargs: Any) -> None:
    """A requested transfer that has ended with images sent: tell the requester they have arrived."""
    if Transfer.objects.filter(pk=transfer_id, status__in=(Status.COMPLETED, Status.COMPLETED_WITH_ERRORS)).exists():
        request_notify_arrival(transfer_id)
