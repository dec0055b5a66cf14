"""What the deployed processes say about themselves (docs/health.md): the database, the broker, how many
workers consume each queue, and when beat last ran.

`/healthz` answers 503 on the first two (the load balancer's question: can this web process serve?); the
other two are warnings, shown as a banner on the operations view: work that nobody will pick up, or
timers that have stopped, with every page still answering.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import time
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from celery import current_app
from django.apps import apps
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

log = structlog.get_logger("portal.liveness")

BEAT_KEY = "portal:beat-heartbeat"  # the time of beat's last tick, as an ISO string
CONSUMERS_KEY = "portal:queue-consumers"  # the last answer from the workers, for HEALTH_CACHE_SECONDS


@dataclass(frozen=True)
class ProcessHealth:
    database: str | None  # None when it answers, else why not
    broker: str | None
    consumers: dict[str, int] = field(default_factory=dict)  # queue -> workers consuming it
    beat_last_run: datetime | None = None
    beat_interval: int = 30

    @property
    def problems(self) -> list[str]:
        """What makes this process unable to serve: /healthz answers 503."""
        found = [f"database: {self.database}"] if self.database else []
        return found + ([f"broker: {self.broker}"] if self.broker else [])

    @property
    def beat_age_seconds(self) -> float | None:
        if self.beat_last_run is None:
            return None
        return max(0.0, (timezone.now() - self.beat_last_run).total_seconds())

    @property
    def beat_late(self) -> bool:
        """Beat has not run for three of its heartbeat intervals (or never has)."""
        age = self.beat_age_seconds
        return age is None or age > 3 * self.beat_interval

    @property
    def idle_queues(self) -> list[str]:
        """Queues tasks are routed to that no worker consumes (unknown while the broker is down)."""
        return [q for q, n in self.consumers.items() if n == 0] if not self.broker else []

    @property
    def warnings(self) -> list[str]:
        found = [f"queue {q}: no worker consumes it" for q in self.idle_queues]
        if self.beat_late:
            age = self.beat_age_seconds
            found.append("beat: never ran" if age is None else f"beat: last ran {int(age)} s ago")
        return found


def database_status() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001  (any failure means "not healthy", and says why)
        # A broken persistent connection would fail every later request too, after the database is back.
        connection.close_if_unusable_or_obsolete()
        return exc.__class__.__name__
    return None


def broker_status() -> str | None:
    try:
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # noqa: BLE001
        return exc.__class__.__name__
    return None


def routed_queues() -> list[str]:
    """Every queue a task or a beat entry is sent to, and the queues the deployed workers are meant to serve."""
    app = current_app
    queues = set(settings.HEALTH_WORKER_QUEUES) | _task_queues()
    for entry in app.conf.beat_schedule.values():
        queue = (entry.get("options") or {}).get("queue")
        queues.add(queue or app.amqp.router.route({}, entry["task"])["queue"].name)
    return sorted(queues)


@functools.cache
def _task_queues() -> frozenset[str]:
    """Where the router sends each registered task. Every app's tasks module is imported first, as a worker
    has them (not through Celery's loader: in a web process its signal would run Django's checks each time)."""
    for config in apps.get_app_configs():
        if importlib.util.find_spec(f"{config.name}.tasks") is not None:
            importlib.import_module(f"{config.name}.tasks")
    app = current_app
    return frozenset(
        app.amqp.router.route({}, name)["queue"].name for name in list(app.tasks) if not name.startswith("celery.")
    )


def queue_consumers(timeout: float | None = None) -> dict[str, int]:
    """How many live workers consume each routed queue: a broadcast `active_queues` with a short wait."""
    replies = current_app.control.inspect(timeout=timeout or settings.HEALTH_INSPECT_TIMEOUT).active_queues() or {}
    counts = dict.fromkeys(routed_queues(), 0)
    for queues in replies.values():
        for queue in queues or ():
            counts[queue["name"]] = counts.get(queue["name"], 0) + 1
    return counts


def _cached_consumers() -> dict[str, int]:
    try:
        found = cache.get(CONSUMERS_KEY)
    except Exception:  # noqa: BLE001  (a cache on the broker's Redis is down with it)
        found = None
    if found is None:
        found = queue_consumers()
        try:
            cache.set(CONSUMERS_KEY, found, settings.HEALTH_CACHE_SECONDS)
        except Exception as exc:  # noqa: BLE001
            log.warning("health_cache_failed", error=exc.__class__.__name__)
    return found


def record_beat_heartbeat(now: datetime | None = None) -> None:
    """Beat's tick says it is alive (portal.beat); never lets a failing cache stop beat."""
    try:
        cache.set(BEAT_KEY, (now or timezone.now()).isoformat(), None)
    except Exception as exc:  # noqa: BLE001
        log.warning("beat_heartbeat_failed", error=exc.__class__.__name__)


def beat_last_run() -> datetime | None:
    try:
        value = cache.get(BEAT_KEY)
    except Exception:  # noqa: BLE001
        return None
    return datetime.fromisoformat(value) if value else None


def process_health(*, workers: bool = True) -> ProcessHealth:
    """The whole picture; `workers=False` skips the broadcast to the workers (the quick load-balancer check)."""
    started = time.monotonic()
    database, broker = database_status(), broker_status()
    consumers = _cached_consumers() if workers and not broker else {}
    health = ProcessHealth(
        database=database,
        broker=broker,
        consumers=consumers,
        beat_last_run=beat_last_run(),
        beat_interval=settings.BEAT_HEARTBEAT_SECONDS,
    )
    log.debug("process_health", seconds=round(time.monotonic() - started, 3), problems=health.problems)
    return health
