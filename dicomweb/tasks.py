"""Celery tasks for the advanced viewer's staff copies: thin."""

from __future__ import annotations

import structlog
from celery import shared_task

from dicomkit import GatewayError
from exchange.services import GatewayUnavailable

from . import staff

log = structlog.get_logger(__name__)


@shared_task(name="dicomweb.stage_staff_copy", acks_late=True)
def stage_staff_copy(trust_id: int, study_uid: str) -> int:
    try:
        return staff.stage(trust_id, study_uid)
    except (GatewayError, GatewayUnavailable) as exc:
        log.warning("staff_copy_failed", trust_id=trust_id, error=str(exc))
        return 0  # the failure is on the copy's marker, where the waiting page shows it


@shared_task(name="dicomweb.purge_staff_copies")
def purge_staff_copies() -> int:
    return staff.purge_stale()
