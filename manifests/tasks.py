"""The manifest task: thin (load, call the service, retry under the gateway layer's one policy)."""

from __future__ import annotations

from functools import partial

import structlog
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from dicomkit import GatewayError
from directory import access
from directory.access import Work
from transfers.models import Transfer

from . import services

log = structlog.get_logger(__name__)


def _gave_up(transfer_id: int, reason: str) -> None:
    # Not the transfer's failure: it delivered. The manifest can be made again with `make_manifests`.
    log.error("manifests_not_made", transfer_id=transfer_id, reason=reason)


@shared_task(
    bind=True, name="manifests.make_manifests", max_retries=None, acks_late=True, **access.time_limits(Work.MANIFEST)
)
def make_manifests(self, transfer_id: int, gateway_retry: dict | None = None) -> str:
    try:
        made = services.manifests_for_transfer(transfer_id)
    except Transfer.DoesNotExist:
        return "no such transfer"
    except (GatewayError, SoftTimeLimitExceeded) as exc:
        return access.retry_task(self, exc, work=Work.MANIFEST, give_up=partial(_gave_up, transfer_id))
    return f"{len(made)} manifests"
