"""The gateway-access layer (directory.access, directory.slots): one semaphore of slots per gateway for every
kind of work, searches that give way to work that has waited, one slot per association inside a holder,
one retry policy and one time limit per kind of work."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from directory import access, slots
from directory.access import GatewayBusy, RetryPolicy, Work, gateway_access
from directory.models import Gateway, GatewaySlot, GatewayWaiter

pytestmark = pytest.mark.django_db


@pytest.fixture
def pacs(trust_a) -> Gateway:
    """A gateway whose PACS allows the portal one association at a time (nothing listens: no test here talks
    to it, they only hold its slots)."""
    return Gateway.objects.create(trust=trust_a, name="PACS", ae_title="RAA_PACS", host="127.0.0.1", port=4260)


def limit(gateway: Gateway, n: int) -> None:
    gateway.max_concurrency = n
    gateway.save()


# --- one semaphore for every kind of work -----------------------------------------------------------------


def test_work_of_every_kind_shares_the_gateways_limit(pacs):
    limit(pacs, 2)
    assert slots.acquire([pacs.pk], "transfer-run", work=Work.TRANSFER, subject="transfer 1")
    with gateway_access(pacs, work=Work.STAGING, subject="share link 1"):
        assert slots.in_use(pacs.pk) == 2
        busy = pytest.raises(GatewayBusy, match="all 2 of its connections are in use")
        with busy, gateway_access(pacs, work=Work.FILING, subject="second opinion 1"):
            pass  # pragma: no cover - never entered
    assert slots.in_use(pacs.pk) == 1  # staging's slot is free again, the transfer's still held
    held = GatewaySlot.objects.get(gateway=pacs, holder="transfer-run")
    assert (held.work, held.subject) == ("transfer", "transfer 1")


def test_a_slot_is_freed_when_the_work_fails(pacs):
    limit(pacs, 1)
    with pytest.raises(RuntimeError), gateway_access(pacs, work=Work.STAGING, subject="share link 1"):
        raise RuntimeError("the work broke")
    assert slots.in_use(pacs.pk) == 0


@pytest.mark.django_db(transaction=True)  # the keepalive thread writes through its own connection
def test_long_background_work_keeps_its_slot_past_the_lease(pacs, settings):
    settings.TRANSFER_LEASE_SECONDS = 6  # renewed every second
    limit(pacs, 1)
    with gateway_access(pacs, work=Work.FORWARDING, subject="reconciliation 1"):
        first = GatewaySlot.objects.get(gateway=pacs).expires_at
        time.sleep(2.5)
        assert GatewaySlot.objects.get(gateway=pacs).expires_at > first
        assert not slots.acquire([pacs.pk], "another", work=Work.TRANSFER)


def test_a_full_gateway_notes_background_work_as_waiting_until_it_gets_a_slot(pacs):
    limit(pacs, 1)
    assert slots.acquire([pacs.pk], "first", work=Work.TRANSFER, subject="transfer 1")
    assert not slots.acquire([pacs.pk], "second", work=Work.STAGING, subject="share link 2")
    assert slots.waiting(pacs.pk) == 1
    slots.release("first")
    assert slots.acquire([pacs.pk], "second again", work=Work.STAGING, subject="share link 2")
    assert slots.waiting(pacs.pk) == 0


# --- interactive work: a short wait, and never in the way of work that has waited ------------------------


def test_a_search_waits_briefly_for_a_slot_then_says_the_pacs_is_busy(pacs, settings):
    settings.GATEWAY_INTERACTIVE_WAIT = 0.6
    limit(pacs, 1)
    assert slots.acquire([pacs.pk], "transfer-run", work=Work.TRANSFER)
    started = time.monotonic()
    with pytest.raises(GatewayBusy, match="PACS is busy"), gateway_access(pacs, work=Work.SEARCH, subject="search"):
        pass  # pragma: no cover - never entered
    assert 0.5 <= time.monotonic() - started < 3


@pytest.mark.django_db(transaction=True)  # released from another thread, through its own connection
def test_a_search_takes_the_slot_freed_while_it_waits(pacs, settings):
    settings.GATEWAY_INTERACTIVE_WAIT = 5
    limit(pacs, 1)
    assert slots.acquire([pacs.pk], "transfer-run", work=Work.TRANSFER)

    def release_later() -> None:
        slots.release("transfer-run")
        connection.close()  # this thread's own

    threading.Timer(0.5, release_later).start()
    with gateway_access(pacs, work=Work.SEARCH, subject="search"):
        assert GatewaySlot.objects.get(gateway=pacs).work == "search"


def test_a_search_gives_way_to_background_work_that_has_waited(pacs, settings):
    """However many searches come, work that has waited GATEWAY_INTERACTIVE_YIELD_AFTER gets the next slot."""
    settings.GATEWAY_INTERACTIVE_WAIT = 0
    settings.GATEWAY_INTERACTIVE_YIELD_AFTER = 30
    limit(pacs, 1)
    assert slots.acquire([pacs.pk], "transfer-run", work=Work.TRANSFER, subject="transfer 1")
    assert not slots.acquire([pacs.pk], "waiting-run", work=Work.TRANSFER, subject="transfer 2")
    slots.release("transfer-run")

    # Waiting for a few seconds only: searches still go first (they are short).
    with gateway_access(pacs, work=Work.SEARCH, subject="search"):
        pass
    # Waiting longer: the free slot is left for it.
    GatewayWaiter.objects.update(since=timezone.now() - timedelta(seconds=31))
    with pytest.raises(GatewayBusy), gateway_access(pacs, work=Work.SEARCH, subject="search"):
        pass  # pragma: no cover - never entered
    assert slots.acquire([pacs.pk], "waiting-run", work=Work.TRANSFER, subject="transfer 2")
    slots.release("waiting-run")
    with gateway_access(pacs, work=Work.SEARCH, subject="search"):  # served, nobody waits any more
        pass


def test_a_waiter_that_stopped_asking_holds_nobody_up(pacs, settings):
    settings.GATEWAY_INTERACTIVE_WAIT = 0
    limit(pacs, 1)
    now = timezone.now()
    GatewayWaiter.objects.create(
        gateway=pacs,
        subject="transfer 9",
        work="transfer",
        since=now - timedelta(hours=1),
        seen_at=now - timedelta(minutes=5),
    )
    with gateway_access(pacs, work=Work.SEARCH, subject="search"):
        assert GatewaySlot.objects.get(gateway=pacs).work == "search"


def test_no_extra_streams_are_taken_while_other_work_waits(pacs):
    limit(pacs, 3)
    assert slots.acquire([pacs.pk], "run", work=Work.TRANSFER, subject="transfer 1")
    assert slots.acquire_extra(pacs.pk, "run", 2, work=Work.TRANSFER) == 2
    slots.release("run")

    assert slots.acquire([pacs.pk], "run", work=Work.TRANSFER, subject="transfer 1")
    assert slots.acquire([pacs.pk], "other", work=Work.FILING, subject="second opinion 1")
    assert slots.acquire([pacs.pk], "third", work=Work.FILING, subject="second opinion 2")
    assert not slots.acquire([pacs.pk], "late", work=Work.STAGING, subject="share link 3")
    slots.release("third")
    assert slots.acquire_extra(pacs.pk, "run", 2, work=Work.TRANSFER) == 0  # the free slot is the waiter's


# --- inside a holder: one slot per association ------------------------------------------------------------


def most_at_once(holder: str, gateway: Gateway, threads: int = 4) -> int:
    """Run `threads` associations of `holder` at once (0.3 s each); the most that were open together."""
    open_now, most = [0], [0]
    lock = threading.Lock()

    def association() -> None:
        with slots.stream(holder, gateway.pk, wait=10):
            with lock:
                open_now[0] += 1
                most[0] = max(most[0], open_now[0])
            time.sleep(0.3)
            with lock:
                open_now[0] -= 1

    running = [threading.Thread(target=association) for _ in range(threads)]
    for t in running:
        t.start()
    for t in running:
        t.join()
    return most[0]


@pytest.mark.django_db(transaction=True)  # the threads borrow through their own connections
def test_a_holders_threads_open_no_more_associations_than_its_slots(pacs):
    limit(pacs, 1)
    assert slots.acquire([pacs.pk], "run", work=Work.TRANSFER)
    assert most_at_once("run", pacs) == 1  # one slot held, none free: one at a time
    limit(pacs, 2)
    assert slots.acquire_extra(pacs.pk, "run", 1, work=Work.TRANSFER) == 1
    assert most_at_once("run", pacs) == 2
    slots.release("run")


@pytest.mark.django_db(transaction=True)
def test_a_holders_thread_borrows_a_slot_free_at_the_gateway_for_one_association(pacs):
    limit(pacs, 3)
    assert slots.acquire([pacs.pk], "run", work=Work.TRANSFER, subject="transfer 1")
    assert most_at_once("run", pacs, threads=4) == 3  # its own slot and the two free ones, never more
    assert slots.in_use(pacs.pk) == 1  # the borrowed ones went back with their association
    assert slots.acquire([pacs.pk], "other", work=Work.STAGING, subject="share link 1")
    slots.release("other")
    slots.release("run")


@pytest.mark.django_db(transaction=True)
def test_nothing_is_borrowed_while_other_work_waits_for_the_gateway(pacs):
    limit(pacs, 3)
    assert slots.acquire([pacs.pk], "run", work=Work.TRANSFER, subject="transfer 1")
    GatewayWaiter.objects.create(
        gateway=pacs, subject="share link 1", work="staging", since=timezone.now(), seen_at=timezone.now()
    )
    assert most_at_once("run", pacs, threads=3) == 1
    slots.release("run")


def test_an_association_waits_no_longer_than_it_may_for_the_holders_other_one(pacs):
    limit(pacs, 1)
    assert slots.acquire([pacs.pk], "run", work=Work.TRANSFER)
    first = slots.stream("run", pacs.pk, wait=1)
    second = slots.stream("run", pacs.pk, wait=0.3, gateway_name="PACS")
    with first, pytest.raises(GatewayBusy), second:
        pass  # pragma: no cover - never entered
    slots.release("run")


# --- one retry policy -------------------------------------------------------------------------------------


def test_the_retry_policy_backs_off_exponentially_with_jitter_up_to_a_cap():
    policy = RetryPolicy(window=3600, base_delay=10, max_delay=100)
    assert [policy.delay(failures=n, elapsed=0, jitter=0) for n in (1, 2, 3, 4, 5, 6)] == [5, 10, 20, 40, 50, 50]
    assert policy.delay(failures=1, elapsed=0, jitter=0.999) == pytest.approx(10, abs=0.01)
    assert policy.delay(failures=3, elapsed=3599, jitter=0.5) == 30


def test_the_retry_policy_gives_up_once_the_window_has_passed():
    policy = RetryPolicy(window=3600, base_delay=10, max_delay=100)
    assert policy.delay(failures=2, elapsed=3600, jitter=0.5) is None


def test_the_policy_reads_the_settings(settings):
    settings.GATEWAY_RETRY_WINDOW, settings.GATEWAY_RETRY_BASE_DELAY, settings.GATEWAY_RETRY_MAX_DELAY = 60, 2, 8
    assert access.retry_policy() == RetryPolicy(window=60, base_delay=2, max_delay=8)


# --- one time limit per kind of work ----------------------------------------------------------------------


def test_every_pacs_facing_task_has_its_kinds_time_limits(settings):
    from copies.tasks import deliver_correction
    from exchange.tasks import echo_gateway
    from manifests.tasks import make_manifests
    from reconciliation.tasks import forward_held
    from region.tasks import run_migration
    from sharing.tasks import file_second_opinion, stage_share_link
    from transfers.tasks import run_transfer

    tasks = {
        "transfer": run_transfer,
        "staging": stage_share_link,
        "filing": file_second_opinion,
        "forwarding": forward_held,
        "health": echo_gateway,
        "migration": run_migration,
        "manifest": make_manifests,
        "correction": deliver_correction,
    }
    assert set(tasks) == set(settings.GATEWAY_TIME_LIMITS)
    for work, task in tasks.items():
        assert (task.soft_time_limit, task.time_limit) == settings.GATEWAY_TIME_LIMITS[work], work
    # Staging no longer runs under the default five minutes meant for short jobs.
    assert stage_share_link.soft_time_limit > settings.CELERY_TASK_SOFT_TIME_LIMIT
