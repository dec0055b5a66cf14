"""Celery tasks for the exchange: thin, take IDs, keep their state in the database."""

from __future__ import annotations

from celery import shared_task

from directory.models import Gateway

from . import services

# The demo and deployment workers consume urgent, routine and default; health checks are default work.
QUEUE = "default"


@shared_task(name="exchange.echo_gateways", ignore_result=True, soft_time_limit=30, time_limit=60)
def echo_gateways() -> int:
    """Beat's health round: one task per gateway, so a gateway that hangs does not delay the others."""
    ids = list(Gateway.objects.values_list("pk", flat=True))
    for pk in ids:
        echo_gateway.apply_async((pk,), queue=QUEUE)
    return len(ids)


# A C-ECHO waits at most the association timeouts (30 s by default) before reporting the gateway down.
@shared_task(name="exchange.echo_gateway", ignore_result=True, soft_time_limit=120, time_limit=150)
def echo_gateway(gateway_id: int) -> bool | None:
    gateway = Gateway.objects.select_related("trust").filter(pk=gateway_id).first()
    if gateway is None:
        return None  # deleted since the round was planned
    return services.gateway_echo(gateway=gateway).ok


@shared_task(
    name="exchange.stage_study_view", ignore_result=True, acks_late=True, soft_time_limit=1800, time_limit=1900
)
def stage_study_view(trust_id: int, study_uid: str) -> int:
    """Copy a study for a member of staff to view (exchange.viewing); a failure is written beside it."""
    from dicomkit import GatewayError

    from . import viewing

    try:
        return viewing.stage(trust_id, study_uid)
    except (GatewayError, services.GatewayUnavailable):
        return 0


@shared_task(name="exchange.purge_staff_views", ignore_result=True)
def purge_staff_views() -> int:
    from . import viewing

    return viewing.purge_stale()
