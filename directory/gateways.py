"""From a Gateway row to the Django-free DICOM client: the one place that maps the two."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from django.conf import settings

from dicomkit import GatewayClient, GatewayConfig, MoveDestination, client_for

from .models import Gateway


def gateway_config(gateway: Gateway) -> GatewayConfig:
    return GatewayConfig(
        ae_title=gateway.ae_title,
        host=gateway.host,
        port=gateway.port or 0,
        dicomweb_url=gateway.dicomweb_url,
        username=gateway.dicomweb_username,
        password=gateway.dicomweb_password,
        bearer_token=gateway.dicomweb_token,
        verify_tls=gateway.verify_tls,
        retrieve_method=gateway.retrieve_method,
        store_method=gateway.store_method,
        query_method=gateway.query_method,
        label=f"trust {gateway.trust.ods_code} {gateway.name}",
        store_sender=settings.DICOM_STORE_SENDER,
    )


def portal_move_destination() -> MoveDestination:
    """The portal's own receiver (`manage.py run_dicom_receiver`, DICOM_AE_TITLE on DICOM_PORT) as a
    C-MOVE destination: its jobs folder is under SPOOL_DIR, so the workers that issue C-MOVEs must share
    that folder with the receiver (same host, or a shared volume)."""
    return MoveDestination(settings.DICOM_AE_TITLE, Path(settings.SPOOL_DIR) / "receiver" / "jobs")


_TIMEOUTS = ("connect_timeout", "acse_timeout", "dimse_timeout", "network_timeout", "http_timeout")


def gateway_client(
    gateway: Gateway, *, move_destination: MoveDestination | None = None, timeout: float | None = None
) -> GatewayClient:
    """A client speaking as the portal's own AE title (DICOM_AE_TITLE). A gateway that retrieves by
    C-MOVE sends to the portal's receiver unless told otherwise. `timeout` caps every network timeout
    (a person waiting for a search gets an answer within it). Talk to a gateway through
    `directory.access`, which holds a slot for the work; this is its building block."""
    if move_destination is None and gateway.retrieve_method == Gateway.RetrieveMethod.C_MOVE:
        move_destination = portal_move_destination()
    config = gateway_config(gateway)
    if timeout is not None:
        config = replace(config, **{name: min(getattr(config, name), timeout) for name in _TIMEOUTS})
    return client_for(config, local_ae_title=settings.DICOM_AE_TITLE, move_destination=move_destination)
