"""Celery tasks of the region, all on the `bulk` queue (CELERY_TASK_ROUTES): thin, state in the database."""

from __future__ import annotations

import os

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from dicomkit import GatewayError
from directory import access
from directory.access import Work

from . import migration


@shared_task(
    bind=True, name="region.run_migration", max_retries=None, acks_late=True, **access.time_limits(Work.MIGRATION)
)
def run_migration(self, job_id: int, gateway_retry: dict | None = None) -> str:
    """One slice of a migration; the next goes back on the queue, behind any clinician's work."""
    owner = f"{self.request.hostname or 'worker'}:{os.getpid()}:{self.request.id}"
    try:
        outcome = migration.run_slice(job_id, owner=owner)
    except migration.Busy:
        raise self.retry(countdown=settings.MIGRATION_LEASE_SECONDS / 2, queue="bulk") from None
    except (GatewayError, SoftTimeLimitExceeded) as exc:
        return access.retry_task(
            self,
            exc,
            work=Work.MIGRATION,
            give_up=lambda reason: migration.migration_fail(job_id, reason),
            note=lambda error: migration.note_error(job_id, error),
        )
    if outcome.again is None:
        return outcome.status
    # A slice that ended well starts the retry policy afresh.
    raise self.retry(countdown=outcome.again, kwargs={"gateway_retry": None}, queue="bulk")


@shared_task(name="region.sweep_migrations")
def sweep_migrations() -> int:
    return migration.sweep()
