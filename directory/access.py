"""The one way the portal talks to a trust's PACS: a slot within the gateway's max_concurrency for every
association, one retry policy, and one time limit per kind of work (docs/gateway-access.md).

    with gateway_access(link.gateway, work=Work.STAGING, subject=f"share link {link.pk}") as client:
        client.find_instances(study_uid)          # each association takes the slot, one at a time

Background work (transfers, staging, filing, forwarding, the health round) that finds a gateway full gets
GatewayBusy at once and its task asks again in a second or two (`retry_task`); waiting is not a failure.
Interactive work (a search, a study's page, an echo from a page) waits up to GATEWAY_INTERACTIVE_WAIT
seconds, then GatewayBusy: the page or API answers 503 "busy, try again". A search never takes a slot from
under background work that has waited GATEWAY_INTERACTIVE_YIELD_AFTER seconds (directory.slots).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypedDict

import structlog
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connections
from django.utils import timezone

from dicomkit import (
    EchoResult,
    GatewayClient,
    GatewayError,
    Instance,
    MoveDestination,
    Retrieval,
    RetrievedInstance,
    Series,
    StoreResult,
    Study,
    StudyQuery,
)

from . import slots
from .gateways import gateway_client
from .models import Gateway
from .slots import GatewayBusy

__all__ = ["GatewayBusy", "Work", "client", "gateway_access", "retry_policy", "retry_task", "time_limits"]

log = structlog.get_logger(__name__)

SLOT_WAIT_SECONDS = 1.0  # background work asks again for a full gateway's slot after 1-2 s
INTERACTIVE_POLL_SECONDS = 0.2
# How long one thread of a holder waits for another of its own streams to the same gateway to end (a
# transfer's listing of a study while its retrieval runs, at a gateway that allows one association).
OWN_STREAMS_WAIT = 300.0


class Work(StrEnum):
    """Kinds of work that reach a PACS; each has its own time limit (GATEWAY_TIME_LIMITS)."""

    TRANSFER = "transfer"
    STAGING = "staging"  # a share link's studies copied into the portal
    FILING = "filing"  # a second opinion's SR filed back into the source PACS
    FORWARDING = "forwarding"  # held instances sent on once reconciled
    CORRECTION = "correction"  # a source's rejection note (and corrected instances) sent to a copy's holder
    HEALTH = "health"  # the beat's C-ECHO round
    SEARCH = "search"  # study search and a study's page, from a person waiting
    ECHO = "echo"  # an echo asked for from a page or the API
    MIGRATION = "migration"  # a bulk migration between archives (region.migration), below all else
    MANIFEST = "manifest"  # an exchanged study listed at its destination for its manifest (manifests/)


INTERACTIVE = frozenset({Work.SEARCH, Work.ECHO})


# --- time limits --------------------------------------------------------------------------------------


class TimeLimits(TypedDict):
    soft_time_limit: int
    time_limit: int


def time_limits(work: Work) -> TimeLimits:
    """Celery options for a task doing this kind of work: `@shared_task(..., **time_limits(Work.STAGING))`."""
    soft, hard = settings.GATEWAY_TIME_LIMITS[str(work)]
    return {"soft_time_limit": soft, "time_limit": hard}


# --- slots around work ----------------------------------------------------------------------------------


@contextmanager
def gateway_access(
    gateway: Gateway, *, work: Work, subject: str, move_destination: MoveDestination | None = None
) -> Iterator[GatewayClient]:
    """Hold one of the gateway's slots for the block and yield a client whose associations use it, one at a
    time. Raises GatewayBusy when none is free (interactive work waits GATEWAY_INTERACTIVE_WAIT first).
    Background work keeps its slot fresh from a helper thread, however long the block runs."""
    interactive = work in INTERACTIVE
    holder = f"{work}:{uuid.uuid4().hex[:20]}"
    if not _acquire(gateway, holder, work=work, subject=subject, interactive=interactive):
        raise GatewayBusy(gateway.name, gateway.max_concurrency)
    keepalive = None if interactive else _Keepalive(holder)
    try:
        timeout = settings.GATEWAY_INTERACTIVE_TIMEOUT if interactive else None
        yield client(gateway, holder=holder, move_destination=move_destination, timeout=timeout)
    finally:
        if keepalive is not None:
            keepalive.stop()
        slots.release(holder)


def _acquire(gateway: Gateway, holder: str, *, work: Work, subject: str, interactive: bool) -> bool:
    deadline = time.monotonic() + (settings.GATEWAY_INTERACTIVE_WAIT if interactive else 0)
    while True:
        if slots.acquire([gateway.pk], holder, work=work, subject=subject, interactive=interactive):
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(INTERACTIVE_POLL_SECONDS, remaining))


class _Keepalive:
    """Renews a holder's slots from a helper thread, so work longer than a lease keeps them."""

    def __init__(self, holder: str) -> None:
        self.holder = holder
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="gateway-slot-keepalive", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.done.wait(max(1.0, settings.TRANSFER_LEASE_SECONDS / 6)):
                slots.renew(self.holder)
        except Exception:
            log.warning("gateway_slot_keepalive_failed", holder=self.holder, exc_info=True)
        finally:
            connections.close_all()  # this thread's own connections

    def stop(self) -> None:
        self.done.set()
        self.thread.join()


# --- a client whose every association takes one of the holder's slots -----------------------------------


def client(
    gateway: Gateway, *, holder: str, move_destination: MoveDestination | None = None, timeout: float | None = None
) -> GatewayClient:
    """The gateway's client for work that holds slots there under `holder` (slots.acquire): each
    association or HTTP stream it opens takes one of those slots, so however many threads use it, the
    gateway never sees more from this holder than the slots it holds."""
    inner = gateway_client(gateway, move_destination=move_destination, timeout=timeout)
    return GatedClient(inner, holder=holder, gateway_id=gateway.pk)


class GatedClient(GatewayClient):
    """A GatewayClient whose operations each hold one of `holder`'s slots at the gateway while they run."""

    def __init__(self, inner: GatewayClient, *, holder: str, gateway_id: int, wait: float = OWN_STREAMS_WAIT) -> None:
        super().__init__(inner.config, inner.dimse, inner.web)
        self.holder, self.gateway_id, self.wait = holder, gateway_id, wait

    def _stream(self) -> AbstractContextManager[None]:
        return slots.stream(self.holder, self.gateway_id, wait=self.wait, gateway_name=self.config.name)

    def echo(self) -> EchoResult:
        with self._stream():
            return super().echo()

    def find_studies(self, query: StudyQuery) -> list[Study]:
        with self._stream():
            return super().find_studies(query)

    def find_series(self, study_uid: str) -> list[Series]:
        with self._stream():
            return super().find_series(study_uid)

    def find_instances(self, study_uid: str, series_uid: str | None = None) -> list[Instance]:
        with self._stream():
            return super().find_instances(study_uid, series_uid)

    def find_instance_uids(self, study_uid: str, sop_uids: Sequence[str] = ()) -> set[str]:
        with self._stream():
            return super().find_instance_uids(study_uid, sop_uids)

    def store(self, paths: Iterable[Path | str]) -> list[StoreResult]:
        with self._stream():
            return super().store(paths)

    def retrieve(
        self,
        study_uid: str,
        series_uid: str | None = None,
        sop_uids: Sequence[str] | None = None,
        *,
        spool_dir: Path | str,
        label: str = "",
    ) -> Retrieval:
        inner = super().retrieve(study_uid, series_uid, sop_uids, spool_dir=spool_dir, label=label)
        return _GatedRetrieval(inner, self)


class _GatedRetrieval(Retrieval):
    """A retrieval that takes its slot when the first instance is asked for (in the thread that iterates,
    so a caller that beats a heartbeat meanwhile keeps beating) and gives it back when it ends or closes."""

    def __init__(self, inner: Retrieval, gated: GatedClient) -> None:  # no factory: it wraps a retrieval
        self.inner, self.gated = inner, gated
        self.summary = inner.summary
        self._lock = threading.Lock()
        self._state = "waiting"  # -> "open" -> "ended"
        self._token = ""

    def __next__(self) -> RetrievedInstance:
        with self._lock:
            state = self._state
        if state == "ended":
            raise StopIteration
        if state == "waiting":
            g = self.gated
            token = slots.take_stream(g.holder, g.gateway_id, wait=g.wait, gateway_name=g.config.name)
            with self._lock:
                self._state, self._token = "open", token
        try:
            return next(self.inner)
        except BaseException:
            self._end()
            raise

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            self._end()

    def _end(self) -> None:
        with self._lock:
            was, self._state = self._state, "ended"
        if was == "open":
            slots.end_stream(self.gated.holder, self.gated.gateway_id, self._token)


# --- the one retry policy -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter for as long as a run of transient errors lasts, up to a window."""

    window: float
    base_delay: float
    max_delay: float

    def delay(self, *, failures: int, elapsed: float, jitter: float) -> float | None:
        """Seconds until the next try after the `failures`-th transient error in a row, `elapsed` seconds
        after the first; None once the window has passed (give up). `jitter` in [0, 1) spreads the
        retries of many tasks apart."""
        if elapsed >= self.window:
            return None
        delay = min(self.max_delay, self.base_delay * 2 ** max(failures - 1, 0))
        return delay / 2 + delay / 2 * jitter


def retry_policy() -> RetryPolicy:
    return RetryPolicy(
        window=settings.GATEWAY_RETRY_WINDOW,
        base_delay=settings.GATEWAY_RETRY_BASE_DELAY,
        max_delay=settings.GATEWAY_RETRY_MAX_DELAY,
    )


def duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def retry_task(
    task: Any,
    exc: BaseException,
    *,
    work: Work,
    give_up: Callable[[str], object],
    note: Callable[[str], object] | None = None,
) -> str:
    """The one retry policy for a Celery task that talks to a PACS; call it from the task's `except`
    clause with what it caught. The task takes `gateway_retry: dict | None = None`, where the policy keeps
    its state (the message carries it from one try to the next).

    * GatewayBusy (no free slot): ask again in 1-2 s; waiting is not a failure and uses no window.
    * a permanent GatewayError: `give_up(reason)` at once.
    * a transient GatewayError: `note(error)`, then back off with jitter; once the run of errors has
      lasted the window, `give_up` with the number of tries, the time and the last error.
    * the task's soft time limit: `give_up` naming the limit (the next try would take as long).
    * anything else is raised again.

    Returns "failed" when it gave up; otherwise raises Celery's Retry."""
    options = _same_queue(task)
    state = dict(task.request.kwargs.get("gateway_retry") or {})
    if isinstance(exc, GatewayBusy):
        countdown = SLOT_WAIT_SECONDS * (1 + random.random())  # noqa: S311 - spreads waiters apart
        raise task.retry(countdown=countdown, kwargs=_with(task, state), **options) from None
    if isinstance(exc, SoftTimeLimitExceeded):
        soft = settings.GATEWAY_TIME_LIMITS[str(work)][0]
        reason = f"Stopped after {duration(soft)}, the time limit for {work} work (GATEWAY_TIME_LIMITS)."
        return _gave_up(task, work, give_up, reason)
    if not isinstance(exc, GatewayError):
        raise exc
    if exc.permanent:
        return _gave_up(task, work, give_up, str(exc))
    now = timezone.now()
    since = datetime.fromisoformat(state["since"]) if state.get("since") else now
    failures = int(state.get("failures", 0)) + 1
    elapsed = (now - since).total_seconds()
    delay = retry_policy().delay(failures=failures, elapsed=elapsed, jitter=random.random())  # noqa: S311
    if delay is None:
        return _gave_up(
            task, work, give_up, f"Gave up after {_tries(failures)} over {duration(elapsed)}; last error: {exc}"
        )
    log.warning("gateway_work_retry", task=task.name, work=str(work), delay_s=round(delay, 1), error=str(exc))
    if note is not None:
        note(str(exc))
    state = {"since": since.isoformat(), "failures": failures}
    raise task.retry(countdown=delay, kwargs=_with(task, state), **options) from None


def _tries(n: int) -> str:
    return f"{n} try" if n == 1 else f"{n} tries"


def _gave_up(task: Any, work: Work, give_up: Callable[[str], object], reason: str) -> str:
    log.warning("gateway_work_failed", task=task.name, work=str(work), reason=reason)
    give_up(reason)
    return "failed"


def _with(task: Any, state: dict) -> dict:
    return {**task.request.kwargs, "gateway_retry": state or None}


def _same_queue(task: Any) -> dict[str, str]:
    """A retry goes back to the queue the task came from (urgent work stays urgent)."""
    queue = (task.request.delivery_info or {}).get("routing_key")
    return {"queue": queue} if queue else {}
