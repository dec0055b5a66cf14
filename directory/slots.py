"""Per-gateway concurrency limits across all processes: a counting semaphore made of database rows.

Each gateway has `max_concurrency` GatewaySlot rows. Taking one is a conditional UPDATE ("set the holder
where the slot is free or its lease has expired"), which is atomic on PostgreSQL (a concurrent update
re-checks the condition once the other commits) and on SQLite (writes are serialised), so two processes
never hold the same slot and no Redis is needed. A holder asking for slots on several gateways (a
transfer: its source and its destination) gets all or none, so two holders never wait on each other's half.

A holder may take extra slots for parallel streams to a gateway (`acquire_extra`), only those free at that
moment and never while other work waits for that gateway: the streams are an optimisation, a waiter needs
a slot to make any progress at all. Extras are held under derived names (`<holder>+<n>`) and renewed and
released with the holder's own.

Inside the holding process, `stream()` hands out one of the holder's slots per association or HTTP stream,
so a holder whose threads talk to a gateway at once (a transfer's store streams, its listing of the study,
its look-ups at the destination) never has more open there than the slots it holds, plus any it borrows
for one stream while they are free at the gateway and nobody waits for one (a transfer's listing of the
study then runs beside its retrieval, as it always did, wherever the gateway has room for both).

Background work that finds a gateway full is noted as waiting (`GatewayWaiter`); interactive work (a
search from a page) takes no slot from under a waiter that has waited GATEWAY_INTERACTIVE_YIELD_AFTER
seconds, so searches can never keep background work out for ever.

Call these outside a database transaction: a slot taken inside one is invisible to other processes until
the transaction commits.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.models import Q, QuerySet
from django.utils import timezone

from dicomkit import GatewayError

from .models import Gateway, GatewaySlot, GatewayWaiter

log = structlog.get_logger(__name__)

EXTRA_SEPARATOR = "+"  # between a holder's name and the number of one of its extra slots
WAITER_FRESH = timedelta(seconds=30)  # a waiter that has not asked again for this long has given up


class GatewayBusy(GatewayError):
    """Every slot of the gateway is taken. Transient: the work waits or the person tries again shortly."""

    def __init__(self, gateway_name: str, limit: int | None = None) -> None:
        what = f"all {limit} of its connections are in use" if limit else "its connections are all in use"
        super().__init__(f"{gateway_name} is busy: {what}. Try again in a minute.", permanent=False)


def lease() -> timedelta:
    """How long a slot stays held without being renewed: the workers' lease (TRANSFER_LEASE_SECONDS)."""
    return timedelta(seconds=settings.TRANSFER_LEASE_SECONDS)


def acquire(
    gateway_ids: Iterable[int], holder: str, *, work: str, subject: str = "", interactive: bool = False
) -> bool:
    """One slot on each gateway (all or none): a holder never keeps half and waits for the rest.

    `subject` names what the work is for ("transfer 12"), the same on every try: background work that
    finds a gateway full is noted as waiting under it. Interactive work gives way to long waiters."""
    wanted = sorted(set(gateway_ids))
    for gateway_id in wanted:
        if not _take(gateway_id, holder, work, subject, interactive=interactive):
            release(holder)
            if subject and not interactive:
                _note_waiting(gateway_id, subject, work)
            return False
    if subject and not interactive:
        GatewayWaiter.objects.filter(subject=subject, gateway_id__in=wanted).delete()
    return True


def acquire_extra(gateway_id: int, holder: str, wanted: int, *, work: str, subject: str = "") -> int:
    """Up to `wanted` more slots on one gateway for `holder`'s parallel streams, as many as are free now
    (no waiting: one slot is enough to make progress), and none while other work waits for the gateway."""
    if wanted <= 0 or _waiters(gateway_id, timezone.now()).exists():
        return 0
    taken = 0
    for n in range(1, wanted + 1):
        if not _take(gateway_id, _extra(holder, n), work, subject, interactive=False, owner=holder):
            break
        taken += 1
    return taken


def _take(
    gateway_id: int, name: str, work: str, subject: str, *, interactive: bool, owner: str = "", grant: bool = True
) -> bool:
    limit = Gateway.objects.filter(pk=gateway_id).values_list("max_concurrency", flat=True).first() or 1
    GatewaySlot.objects.bulk_create(
        [GatewaySlot(gateway_id=gateway_id, number=n) for n in range(limit)], ignore_conflicts=True
    )
    now = timezone.now()
    slots = GatewaySlot.objects.filter(gateway_id=gateway_id, number__lt=limit)
    if slots.filter(holder=name).update(expires_at=now + lease()):
        if grant:
            _streams.grant(owner or name, gateway_id, name, work=work, subject=subject)
        return True  # already ours (this task's previous attempt at the same work)
    if interactive and _waiters(gateway_id, now, waited=settings.GATEWAY_INTERACTIVE_YIELD_AFTER).exists():
        return False
    free = Q(holder="") | Q(expires_at__lt=now)
    for pk in slots.filter(free).order_by("number").values_list("pk", flat=True):
        taken = GatewaySlot.objects.filter(free, pk=pk).update(
            holder=name, work=work[:16], subject=subject[:128], acquired_at=now, expires_at=now + lease()
        )
        if taken:
            if grant:
                _streams.grant(owner or name, gateway_id, name, work=work, subject=subject)
            return True
    return False


def _waiters(gateway_id: int, now: datetime, *, waited: float = 0.0) -> QuerySet[GatewayWaiter]:
    fresh = GatewayWaiter.objects.filter(gateway_id=gateway_id, seen_at__gte=now - WAITER_FRESH)
    return fresh.filter(since__lte=now - timedelta(seconds=waited)) if waited else fresh


def _note_waiting(gateway_id: int, subject: str, work: str) -> None:
    now = timezone.now()
    mine = GatewayWaiter.objects.filter(gateway_id=gateway_id, subject=subject[:128])
    # A wait that lapsed (the work went away and came back) starts again from now.
    mine.filter(seen_at__lt=now - WAITER_FRESH).update(since=now, seen_at=now)
    if not mine.update(seen_at=now):
        waiter = GatewayWaiter(gateway_id=gateway_id, subject=subject[:128], work=work[:16], since=now, seen_at=now)
        GatewayWaiter.objects.bulk_create([waiter], ignore_conflicts=True)
    GatewayWaiter.objects.filter(gateway_id=gateway_id, seen_at__lt=now - 10 * WAITER_FRESH).delete()


def _extra(holder: str, n: int) -> str:
    return f"{holder}{EXTRA_SEPARATOR}{n}"


def _held_by(holder: str) -> Q:
    return Q(holder=holder) | Q(holder__startswith=f"{holder}{EXTRA_SEPARATOR}")


def renew(holder: str) -> None:
    """Called with every heartbeat: the slots live as long as the holder's lease."""
    GatewaySlot.objects.filter(_held_by(holder)).update(expires_at=timezone.now() + lease())


def release(holder: str) -> None:
    GatewaySlot.objects.filter(_held_by(holder)).update(
        holder="", work="", subject="", acquired_at=None, expires_at=None
    )
    _streams.revoke(holder)


def in_use(gateway_id: int) -> int:
    """Slots held now (a lapsed lease counts as free)."""
    return GatewaySlot.objects.filter(gateway_id=gateway_id, expires_at__gte=timezone.now()).exclude(holder="").count()


def in_use_by_work(gateway_id: int) -> dict[str, int]:
    """Slots held now, by kind of work ({"transfer": 2, "staging": 1}), for the operations page."""
    held = GatewaySlot.objects.filter(gateway_id=gateway_id, expires_at__gte=timezone.now()).exclude(holder="")
    return dict(Counter(held.values_list("work", flat=True)))


def waiting(gateway_id: int) -> int:
    """Background work waiting for one of the gateway's slots now."""
    return _waiters(gateway_id, timezone.now()).count()


# --- inside the holding process: one slot per association ------------------------------------------


class _Streams:
    """The slots each holder of this process holds per gateway, and the associations or HTTP streams its
    threads have open there: a thread that would open one more than the slots waits for another to end."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._slots: dict[str, set[tuple[int, str]]] = {}
        self._about: dict[str, tuple[str, str]] = {}  # holder: (work, subject), for the slots it borrows
        self._open: Counter[tuple[str, int]] = Counter()

    def grant(self, holder: str, gateway_id: int, name: str, *, work: str, subject: str) -> None:
        with self._changed:
            self._slots.setdefault(holder, set()).add((gateway_id, name))
            self._about[holder] = (work, subject)
            self._changed.notify_all()

    def revoke(self, holder: str) -> None:
        with self._changed:
            self._slots.pop(holder, None)
            self._about.pop(holder, None)
            self._changed.notify_all()

    def held(self, holder: str, gateway_id: int) -> int:
        return sum(1 for g, _ in self._slots.get(holder, ()) if g == gateway_id)

    def about(self, holder: str) -> tuple[str, str] | None:
        with self._changed:
            return self._about.get(holder)

    def take_within(self, holder: str, gateway_id: int, timeout: float) -> bool:
        """One of the holder's slots for one stream, waiting up to `timeout` for one of its streams to end."""
        deadline = time.monotonic() + timeout
        key = (holder, gateway_id)
        with self._changed:
            while self._open[key] >= self.held(holder, gateway_id):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            self._open[key] += 1
            return True

    def give_back(self, holder: str, gateway_id: int) -> None:
        with self._changed:
            self._open[(holder, gateway_id)] -= 1
            if self._open[(holder, gateway_id)] <= 0:
                del self._open[(holder, gateway_id)]
            self._changed.notify_all()


_streams = _Streams()


def held_here(holder: str, gateway_id: int) -> int:
    """Slots `holder` holds at the gateway, as this process took them."""
    return _streams.held(holder, gateway_id)


BORROW_EVERY = 2.0  # seconds between looks for a free slot at the gateway while a stream waits


def take_stream(holder: str, gateway_id: int, *, wait: float, gateway_name: str = "The gateway") -> str:
    """One slot at the gateway for one association or HTTP stream of `holder`: one of the slots it holds
    there, or, when its other streams use them all, a slot free at the gateway now (borrowed for this
    stream alone, if nobody waits for the gateway). Waits up to `wait` seconds, then GatewayBusy. Returns
    the token `end_stream` needs."""
    deadline = time.monotonic() + wait
    while True:
        if _streams.take_within(holder, gateway_id, 0):
            return ""
        borrowed = _borrow(holder, gateway_id)
        if borrowed:
            return borrowed
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise GatewayBusy(gateway_name, _streams.held(holder, gateway_id) or None)
        if _streams.take_within(holder, gateway_id, min(BORROW_EVERY, remaining)):
            return ""


def end_stream(holder: str, gateway_id: int, token: str = "") -> None:
    if token:
        _give_back_borrowed(token)
    else:
        _streams.give_back(holder, gateway_id)


@contextmanager
def stream(holder: str, gateway_id: int, *, wait: float, gateway_name: str = "The gateway") -> Iterator[None]:
    """`take_stream` for the length of a block."""
    token = take_stream(holder, gateway_id, wait=wait, gateway_name=gateway_name)
    try:
        yield
    finally:
        end_stream(holder, gateway_id, token)


def _borrow(holder: str, gateway_id: int) -> str:
    """A slot free at the gateway now, held under `<holder>+b<random>` (renewed and released with the
    holder's own), for a stream beyond the holder's slots: a transfer's listing of a study beside its
    retrieval, at a gateway with room for both. "" when none is free or other work waits for one."""
    about = _streams.about(holder)
    if about is None:
        return ""  # the holder holds no slot in this process: nothing to borrow beside
    name = f"{holder}{EXTRA_SEPARATOR}b{uuid.uuid4().hex[:8]}"
    try:
        with _own_connection():
            if _waiters(gateway_id, timezone.now()).exists():
                return ""
            return name if _take(gateway_id, name, *about, interactive=False, grant=False) else ""
    except DatabaseError:  # a helper thread that cannot see the holder's rows: wait for its own slots
        log.info("gateway_slot_borrow_failed", holder=holder, exc_info=True)
        return ""


def _give_back_borrowed(name: str) -> None:
    try:
        with _own_connection():
            GatewaySlot.objects.filter(holder=name).update(
                holder="", work="", subject="", acquired_at=None, expires_at=None
            )
    except DatabaseError:  # the lease lapses on its own
        log.warning("gateway_slot_return_failed", holder=name, exc_info=True)


@contextmanager
def _own_connection() -> Iterator[None]:
    """Database access from a holder's helper thread (which otherwise never uses the database) closes the
    connection it opened, so none is left behind by a thread that ends."""
    connection = connections[DEFAULT_DB_ALIAS]
    had = connection.connection is not None
    try:
        yield
    finally:
        if not had:
            connection.close()
