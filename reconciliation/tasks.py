"""Celery: forward a resolved study's held instances. Thin: load, call the service inside the
gateway-access layer (a slot at the destination), and let its one retry policy decide about retries."""

from __future__ import annotations

from functools import partial

import structlog
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from dicomkit import GatewayError
from directory import access
from directory.access import Work, gateway_access

from . import services
from .models import StudyReconciliation

log = structlog.get_logger(__name__)


@shared_task(
    bind=True,
    name="reconciliation.forward_held",
    max_retries=None,
    acks_late=True,
    **access.time_limits(Work.FORWARDING),
)
def forward_held(self, item_id: int, gateway_retry: dict | None = None) -> int | str:
    item = StudyReconciliation.objects.select_related("transfer__destination_gateway__trust").filter(pk=item_id).first()
    if item is None:
        return 0
    try:
        gateway = item.transfer.destination_gateway
        with gateway_access(gateway, work=Work.FORWARDING, subject=f"reconciliation {item_id}") as client:
            return services.reconciliation_forward(item_id, client)
    except (GatewayError, SoftTimeLimitExceeded) as exc:
        # The files stay safe in the queue folder while it retries; giving up fails them with the reason.
        return access.retry_task(
            self,
            exc,
            work=Work.FORWARDING,
            give_up=partial(services.reconciliation_forward_failed, item_id),
            note=partial(services.reconciliation_forward_note, item_id),
        )
