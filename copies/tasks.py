"""Celery: send a correction to one holder. Thin: load, call the service inside the gateway-access layer
(a slot at the holder's gateway), and let the one retry policy decide about retries."""

from __future__ import annotations

from functools import partial

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from dicomkit import GatewayError
from directory import access
from directory.access import Work, gateway_access


@shared_task(
    bind=True, name="copies.deliver_correction", max_retries=None, acks_late=True, **access.time_limits(Work.CORRECTION)
)
def deliver_correction(self, delivery_id: int, gateway_retry: dict | None = None) -> str:
    from . import services
    from .models import CorrectionDelivery

    delivery = CorrectionDelivery.objects.select_related("gateway").filter(pk=delivery_id).first()
    if delivery is None:
        return "gone"
    try:
        with gateway_access(
            delivery.gateway, work=Work.CORRECTION, subject=f"correction delivery {delivery_id}"
        ) as client:
            return services.correction_deliver(delivery_id, client)
    except (GatewayError, SoftTimeLimitExceeded) as exc:
        # A holder whose gateway is down gets the note when it is back: transient errors retry (backoff,
        # jitter) for GATEWAY_RETRY_WINDOW; the register says why it has not arrived yet meanwhile.
        return access.retry_task(
            self,
            exc,
            work=Work.CORRECTION,
            give_up=partial(services.correction_delivery_failed, delivery_id),
            note=partial(services.correction_delivery_note, delivery_id),
        )
