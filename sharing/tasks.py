"""Celery tasks for share links: thin. Load by ID, call the service; the gateway-access layer's one retry
policy decides about retries (directory.access.retry_task)."""

from __future__ import annotations

from functools import partial

import structlog
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from dicomkit import GatewayError
from directory import access
from directory.access import Work

from . import services, staging, sweeper, writeback
from .models import SecondOpinion, ShareLink, WriteBack

log = structlog.get_logger(__name__)


@shared_task(
    bind=True, name="sharing.stage_share_link", max_retries=None, acks_late=True, **access.time_limits(Work.STAGING)
)
def stage_share_link(self, link_id: int, gateway_retry: dict | None = None) -> str:
    try:
        return staging.stage(link_id)
    except ShareLink.DoesNotExist:
        return "no such link"
    except (GatewayError, SoftTimeLimitExceeded) as exc:
        return access.retry_task(
            self,
            exc,
            work=Work.STAGING,
            give_up=partial(staging.fail, link_id),
            note=partial(staging.note_retry, link_id),
        )
    except Exception as exc:
        log.exception("share_staging_crashed", link_id=link_id)
        staging.fail(link_id, f"Copying the images failed unexpectedly ({type(exc).__name__}); see the logs.")
        raise


@shared_task(
    bind=True, name="sharing.file_second_opinion", max_retries=None, acks_late=True, **access.time_limits(Work.FILING)
)
def file_second_opinion(self, opinion_id: int, gateway_retry: dict | None = None) -> str:
    try:
        return services.opinion_file(opinion_id)
    except SecondOpinion.DoesNotExist:
        return "no such opinion"
    except (GatewayError, SoftTimeLimitExceeded) as exc:
        return access.retry_task(
            self,
            exc,
            work=Work.FILING,
            give_up=partial(services.opinion_filing_failed, opinion_id),
            note=partial(services.opinion_filing_note, opinion_id),
        )


@shared_task(
    bind=True, name="sharing.file_write_back", max_retries=None, acks_late=True, **access.time_limits(Work.FILING)
)
def file_write_back(self, write_back_id: int, gateway_retry: dict | None = None) -> str:
    try:
        return writeback.writeback_file(write_back_id)
    except WriteBack.DoesNotExist:
        return "no such write-back"
    except (GatewayError, SoftTimeLimitExceeded) as exc:
        return access.retry_task(
            self,
            exc,
            work=Work.FILING,
            give_up=partial(writeback.filing_failed, write_back_id),
            note=partial(writeback.filing_note, write_back_id),
        )


@shared_task(name="sharing.sweep_stalled")
def sweep_stalled() -> int:
    """Staging and filing whose worker died go to a worker again (sharing.sweeper)."""
    return sweeper.sweep()


@shared_task(name="sharing.purge_share_links")
def purge_share_links() -> int:
    return services.purge_finished_links()
