"""Scheduled audit work (Celery beat, see CELERY_BEAT_SCHEDULE): thin wrappers over the services."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from . import alerts, digest
from .context import system_actor


@shared_task(name="audit.scan_alerts", ignore_result=True)
def scan_alerts() -> int:
    """Run the alert rules over events recorded since the last scan; email new alerts. Returns how many."""
    return len(alerts.scan().created)


@shared_task(name="audit.export_chain_digest", ignore_result=True)
def export_chain_digest() -> int | None:
    """If the day has no digest yet: verify since the last one, then sign, write and email the day's digest
    of the chain head. Its head's sequence number, or None when the day already had one."""
    written = digest.export_due_digest()
    return written.head_seq if written else None


@shared_task(
    name="audit.verify_chain_fully",
    ignore_result=True,
    soft_time_limit=settings.AUDIT_VERIFY_TIME_LIMIT,
    time_limit=settings.AUDIT_VERIFY_TIME_LIMIT + 60,
)
def verify_chain_fully() -> bool:
    """Walk the whole chain (the daily digest walks only the new part) and check it against every digest
    file; anything wrong raises an alert."""
    verification = digest.verify_anchored()
    return digest.record_verification(verification, actor=system_actor("weekly chain verification")).ok


@shared_task(name="audit.verify_chain_anchored", ignore_result=True)
def verify_chain_anchored() -> bool:
    """Hourly: the database against every digest file, and the chain since the newest; alerts as above."""
    verification = digest.verify_anchored(since_last_digest=True)
    return digest.record_verification(verification, actor=system_actor("hourly chain verification")).ok
