"""Celery: forward a resolved study's held instances. Thin: load, call the service, retry."""

from __future__ import annotations

import structlog
from celery import shared_task
from django.conf import settings

from dicomkit import GatewayError
from directory.gateways import gateway_client

from . import services
from .models import StudyReconciliation

log = structlog.get_logger(__name__)


@shared_task(
    bind=True,
    name="reconciliation.forward_held",
    max_retries=None,
    acks_late=True,
    soft_time_limit=settings.TRANSFER_SOFT_TIME_LIMIT,
    time_limit=settings.TRANSFER_TIME_LIMIT,
)
def forward_held(self, item_id: int) -> int:
    queue = (self.request.delivery_info or {}).get("routing_key") or "routine"
    item = StudyReconciliation.objects.select_related("transfer__destination_gateway").filter(pk=item_id).first()
    if item is None:
        return 0
    try:
        return services.reconciliation_forward(item_id, gateway_client(item.transfer.destination_gateway))
    except GatewayError as exc:
        # The files stay safe in the queue folder; the ledger still says held, so nothing is lost.
        StudyReconciliation.objects.filter(pk=item_id).update(forward_error=str(exc)[:2000])
        log.warning("reconciliation_forward_retry", item_id=item_id, error=str(exc))
        countdown = settings.TRANSFER_RETRY_BASE_DELAY if not exc.permanent else settings.TRANSFER_RETRY_MAX_DELAY
        raise self.retry(countdown=countdown, queue=queue) from None
