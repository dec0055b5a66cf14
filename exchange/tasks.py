"""Celery tasks for the exchange: thin, take IDs, keep their state in the database."""

from __future__ import annotations

from functools import partial

from celery import shared_task

from dicomkit import GatewayError
from directory import access
from directory.access import GatewayBusy, Work
from directory.models import Gateway

from . import services


@shared_task(name="exchange.echo_gateways", ignore_result=True, soft_time_limit=30, time_limit=60)
def echo_gateways() -> int:
    """Beat's health round: one task per gateway, so a gateway that hangs does not delay the others."""
    ids = list(Gateway.objects.values_list("pk", flat=True))
    for pk in ids:
        echo_gateway.apply_async((pk,))  # its queue: CELERY_TASK_ROUTES
    return len(ids)


# A C-ECHO waits at most the association timeouts (30 s by default) before reporting the gateway down.
@shared_task(name="exchange.echo_gateway", ignore_result=True, **access.time_limits(Work.HEALTH))
def echo_gateway(gateway_id: int) -> bool | None:
    gateway = Gateway.objects.select_related("trust").filter(pk=gateway_id).first()
    if gateway is None:
        return None  # deleted since the round was planned
    try:
        return services.gateway_echo(gateway=gateway, work=Work.HEALTH).ok
    except GatewayBusy:
        return None  # busy with other work: health unchanged, the next round asks again


@shared_task(
    bind=True,
    name="exchange.stage_study_view",
    ignore_result=True,
    max_retries=None,
    acks_late=True,
    **access.time_limits(Work.STAGING),
)
def stage_study_view(self, trust_id: int, study_uid: str, gateway_retry: dict | None = None) -> int | str:
    """Copy a study for a member of staff to view (exchange.viewing); a failure is written beside it, for
    the person waiting, at once. Only a PACS whose slots are all taken is waited for (the one retry policy)."""
    from . import viewing

    try:
        return viewing.stage(trust_id, study_uid)
    except GatewayBusy as exc:
        return access.retry_task(self, exc, work=Work.STAGING, give_up=partial(viewing.fail, trust_id, study_uid))
    except (GatewayError, services.GatewayUnavailable):
        return 0


@shared_task(name="exchange.purge_staff_views", ignore_result=True)
def purge_staff_views() -> int:
    from . import viewing

    return viewing.purge_stale()
