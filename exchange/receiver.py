"""The portal's receiver wired to the database: the Django side of dicomkit.StorageReceiver."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

from django.conf import settings
from django.db import connection

from dicomkit import AllowList, StorageReceiver

from . import services

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")


def _in_own_connection(hook: Callable[P, R]) -> Callable[P, R]:
    """Hooks run on pynetdicom's association threads (and the allow-list's reload thread), each of which
    would otherwise keep a database connection open after it ends; close it after every call instead."""

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return hook(*args, **kwargs)
        finally:
            connection.close()

    return run


def build_receiver(
    *,
    ae_title: str | None = None,
    port: int | None = None,
    spool_dir: Path | str | None = None,
    bind: str = "0.0.0.0",  # noqa: S104
) -> StorageReceiver:
    """A receiver (not started) that lets in the gateways of the directory and records arrivals,
    quarantines and refusals via exchange.services."""
    return StorageReceiver(
        ae_title or settings.DICOM_AE_TITLE,
        port if port is not None else settings.DICOM_PORT,
        receiver_spool(spool_dir),
        bind_address=bind,
        allow_list=AllowList(
            _in_own_connection(services.receiver_callers),
            refresh_seconds=settings.DICOM_RECEIVER_ALLOW_LIST_REFRESH,
        ),
        max_associations=settings.DICOM_RECEIVER_MAX_ASSOCIATIONS,
        max_per_peer=settings.DICOM_RECEIVER_MAX_PER_PEER,
        network_timeout=settings.DICOM_RECEIVER_IDLE_TIMEOUT,
        decode_check=settings.DICOM_RECEIVER_DECODE_CHECK,
        on_arrival=_in_own_connection(services.received_instance_record),
        on_quarantine=_in_own_connection(services.quarantined_instance_record),
        on_refused=_in_own_connection(services.receiver_refusal_record),
    )


def receiver_spool(spool_dir: Path | str | None = None) -> Path:
    return Path(spool_dir or settings.SPOOL_DIR) / "receiver"
