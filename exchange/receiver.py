"""The portal's receiver wired to the database: the Django side of dicomkit.StorageReceiver."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from django.conf import settings
from django.db import connection

from dicomkit import StorageReceiver

from . import services

log = logging.getLogger(__name__)
T = TypeVar("T")


def _in_own_connection(hook: Callable[[T], object]) -> Callable[[T], None]:
    """Hooks run on pynetdicom's association threads, each of which would otherwise keep a database
    connection open after the association ends; close it after every call instead."""

    def run(item: T) -> None:
        try:
            hook(item)
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
    """A receiver (not started) that records arrivals and quarantines via exchange.services."""
    return StorageReceiver(
        ae_title or settings.DICOM_AE_TITLE,
        port if port is not None else settings.DICOM_PORT,
        Path(spool_dir or settings.SPOOL_DIR) / "receiver",
        bind_address=bind,
        on_arrival=_in_own_connection(services.received_instance_record),
        on_quarantine=_in_own_connection(services.quarantined_instance_record),
    )
