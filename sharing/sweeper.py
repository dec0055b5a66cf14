"""Work whose worker died goes back on the queue (beat, every SHARING_SWEEP_SECONDS): a link still staging,
or an opinion still to be filed, that no worker has spoken for in two leases.

The broker does hand a killed worker's unacknowledged task on, but only after its visibility timeout (an
hour in production): a consultant would wait that long for images, a report that long for its PACS. As
for transfers (transfers.tasks.sweep_stalled), the database says who is working on what. Sending a task
twice is safe: staging keeps what an earlier attempt copied and stops at `ready`; filing stores the same
SR (same UIDs, so the PACS keeps one) and records the filing once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.db.models import Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from directory import slots

from . import services
from .models import Filing, SecondOpinion, ShareLink, Staging

log = structlog.get_logger(__name__)


def _silent_since(now: datetime) -> tuple[datetime, datetime]:
    """Before the first: silent for two leases. Before the second: silent that long and a retry's longest
    back-off besides (the work noted an error, so its next try may be that far off)."""
    quiet = now - 2 * slots.lease()
    return quiet, quiet - timedelta(seconds=settings.GATEWAY_RETRY_MAX_DELAY)


def stalled_links(now: datetime | None = None) -> QuerySet[ShareLink]:
    now = now or timezone.now()
    quiet, retrying = _silent_since(now)
    live = ShareLink.objects.filter(
        staging_status__in=(Staging.QUEUED, Staging.STAGING), revoked_at__isnull=True, expires_at__gt=now
    ).annotate(seen=Coalesce("staging_heartbeat_at", "created_at"))
    return live.filter(Q(staging_error="", seen__lt=quiet) | Q(seen__lt=retrying))


def stalled_opinions(now: datetime | None = None) -> QuerySet[SecondOpinion]:
    now = now or timezone.now()
    quiet, retrying = _silent_since(now)
    pending = SecondOpinion.objects.filter(filing_status=Filing.PENDING).annotate(
        seen=Coalesce("filing_started_at", "created_at")
    )
    return pending.filter(Q(filing_error="", seen__lt=quiet) | Q(seen__lt=retrying))


def sweep(now: datetime | None = None) -> int:
    """Send each stalled link's staging and opinion's filing again; returns how many."""
    now = now or timezone.now()
    sent = 0
    for link_id in list(stalled_links(now).values_list("pk", flat=True)):
        # Noted as seen now, so the next sweep gives the new message its own two leases.
        if ShareLink.objects.filter(pk=link_id).update(staging_heartbeat_at=now):
            services._enqueue_staging(link_id)
            log.warning("share_staging_requeued", link_id=link_id)
            sent += 1
    for opinion_id in list(stalled_opinions(now).values_list("pk", flat=True)):
        if SecondOpinion.objects.filter(pk=opinion_id).update(filing_started_at=now):
            services._enqueue_filing(opinion_id)
            log.warning("opinion_filing_requeued", opinion_id=opinion_id)
            sent += 1
    return sent
