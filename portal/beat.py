"""Celery beat's scheduler with a heartbeat (CELERY_BEAT_SCHEDULER): every tick notes that beat is alive,
so /healthz and the operations view can say how long ago it last ran (portal.liveness)."""

from __future__ import annotations

import time
from typing import Any

from celery.beat import PersistentScheduler
from django.conf import settings

from .liveness import record_beat_heartbeat


class HeartbeatScheduler(PersistentScheduler):
    """The default (shelve-file) scheduler; it wakes at least every BEAT_HEARTBEAT_SECONDS to say so."""

    _last_beat = 0.0

    def tick(self, *args: Any, **kwargs: Any) -> float:
        now = time.monotonic()
        if now - self._last_beat >= settings.BEAT_HEARTBEAT_SECONDS / 3:
            record_beat_heartbeat()
            self._last_beat = now
        interval = super().tick(*args, **kwargs)
        return min(interval, settings.BEAT_HEARTBEAT_SECONDS / 3)
