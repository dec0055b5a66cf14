"""Celery tasks for share links: thin. Load by ID, call the service, decide about retries."""

from __future__ import annotations

import structlog
from celery import shared_task

from dicomkit import GatewayError

from . import services, staging, writeback
from .models import ShareLink

log = structlog.get_logger(__name__)

STAGING_RETRIES = 8
FILING_RETRIES = 10


def _backoff(retries: int) -> int:
    return min(10 * 2**retries, 600)


@shared_task(bind=True, name="sharing.stage_share_link", max_retries=STAGING_RETRIES, acks_late=True)
def stage_share_link(self, link_id: int) -> str:
    try:
        return staging.stage(link_id)
    except ShareLink.DoesNotExist:
        return "no such link"
    except GatewayError as exc:
        if exc.permanent or self.request.retries >= STAGING_RETRIES:
            staging.fail(link_id, str(exc))
            return "failed"
        log.warning("share_staging_retry", link_id=link_id, error=str(exc))
        raise self.retry(countdown=_backoff(self.request.retries)) from None
    except Exception as exc:
        log.exception("share_staging_crashed", link_id=link_id)
        staging.fail(link_id, f"Copying the images failed unexpectedly ({type(exc).__name__}); see the logs.")
        raise


@shared_task(bind=True, name="sharing.file_second_opinion", max_retries=FILING_RETRIES, acks_late=True)
def file_second_opinion(self, opinion_id: int) -> str:
    final = self.request.retries >= FILING_RETRIES
    try:
        return services.opinion_file(opinion_id, final=final)
    except GatewayError as exc:
        log.warning("second_opinion_filing_retry", opinion_id=opinion_id, error=str(exc))
        raise self.retry(countdown=_backoff(self.request.retries)) from None


@shared_task(bind=True, name="sharing.file_write_back", max_retries=FILING_RETRIES, acks_late=True)
def file_write_back(self, write_back_id: int) -> str:
    final = self.request.retries >= FILING_RETRIES
    try:
        return writeback.writeback_file(write_back_id, final=final)
    except GatewayError as exc:
        log.warning("write_back_filing_retry", write_back_id=write_back_id, error=str(exc))
        writeback.filing_retry_failed(write_back_id, exc)
        raise self.retry(countdown=_backoff(self.request.retries)) from None


@shared_task(name="sharing.purge_share_links")
def purge_share_links() -> int:
    return services.purge_finished_links()
