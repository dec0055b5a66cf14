"""Acceptance tests of the transfer engine through a real Celery worker and real Orthanc servers:
a destination outage, a study with a damaged instance, and trauma before routine."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from directory.models import SharingAgreement
from tests.dicom.orthanc import free_port
from transfers.models import InstanceState, Transfer

from .peers import orthanc_gateway, sop_uids_held
from .test_worker import finished, push, wait_for
from .worker import Worker, isolated_broker

pytestmark = [pytest.mark.interop, pytest.mark.django_db(transaction=True)]

# Short backoff and retry window for the worker process (its settings come from its environment).
FAST_RETRIES = {"TRANSFER_RETRY_BASE_DELAY": "0.5", "TRANSFER_RETRY_MAX_DELAY": "1", "TRANSFER_RETRY_WINDOW": "6"}


def start_worker(tmp_path: Path, options: dict, concurrency: int = 2) -> Worker:
    return Worker(tmp_path / "worker", options, env_extra=FAST_RETRIES, concurrency=concurrency)


@pytest.fixture
def worker_broker(transactional_db, tmp_path: Path) -> Iterator[dict]:
    with isolated_broker(tmp_path / "broker") as options:
        yield options


@pytest.fixture
def fast_worker(worker_broker, tmp_path: Path) -> Iterator[Worker]:
    worker = start_worker(tmp_path, worker_broker).start()
    try:
        yield worker
    finally:
        # The test has its answer in the database and the broker is this test's alone: a warm shutdown
        # (up to 20 s on the filesystem broker) would only add time.
        worker.kill()


@pytest.fixture
def agreement(trust_a, trust_b):
    return SharingAgreement.objects.create(trust_a=trust_a, trust_b=trust_b)


@pytest.fixture
def region(agreement, pacs_pair, trust_a, trust_b):
    a, b = pacs_pair
    return orthanc_gateway(trust_a, a), orthanc_gateway(trust_b, b)


# --- 1. outage ------------------------------------------------------------------------------------


def test_a_destination_outage_is_waited_out_and_every_instance_arrives_once(
    fast_worker, region, pacs_pair, ct_study, alice
):
    b = pacs_pair[1]
    b.delete_study(ct_study.uid)
    b.stop()  # down before the store phase
    try:
        transfer_id = push(alice, ct_study.uid)
        wait_for(
            lambda: Transfer.objects.get(pk=transfer_id).transient_failures >= 2,
            fast_worker,
            timeout=30,
            what="the worker to retry against the stopped destination",
        )
        assert Transfer.objects.get(pk=transfer_id).status not in ("failed", "completed")
    finally:
        b.start()  # same ports, same storage

    transfer = wait_for(lambda: finished(transfer_id), fast_worker, timeout=60)

    assert transfer.status == "completed", (transfer.errors, fast_worker.log()[-4000:])
    assert transfer.transient_failures == 0 and transfer.attempts >= 3
    held = sop_uids_held(b, ct_study.uid)
    assert len(held) == len(set(held)) == len(ct_study.paths)
    assert set(held) == ct_study.sop_uids
    assert set(transfer.instances.values_list("state", flat=True)) == {InstanceState.STORED}


def test_a_destination_that_never_returns_fails_with_a_reason_after_the_retry_window(
    fast_worker, agreement, pacs_pair, ct_study, alice, trust_a, trust_b
):
    orthanc_gateway(trust_a, pacs_pair[0])
    orthanc_gateway(trust_b, pacs_pair[1], name="Gone", ae_title="GONE", port=free_port())  # nothing listens
    started = time.monotonic()
    transfer_id = push(alice, ct_study.uid)

    transfer = wait_for(lambda: finished(transfer_id), fast_worker, timeout=40)

    assert transfer.status == "failed"
    assert time.monotonic() - started >= 6  # the window, not the first error
    assert transfer.transient_failures >= 3
    reason = transfer.errors[-1]["error"]
    assert reason.startswith("Gave up after") and "last error" in reason, reason
    assert "GONE" in reason or "127.0.0.1" in reason or "connect" in reason.lower(), reason
    assert not transfer.instances.filter(state=InstanceState.STORED).exists()
    assert set(transfer.instances.values_list("state", flat=True)) == {InstanceState.FAILED}


# --- 2. bad data ----------------------------------------------------------------------------------


def test_a_truncated_instance_is_flagged_and_never_reported_as_sent(
    fast_worker, region, pacs_pair, damaged_study, alice
):
    study, bad_uid = damaged_study
    b = pacs_pair[1]
    b.delete_study(study.uid)
    transfer_id = push(alice, study.uid)

    transfer = wait_for(lambda: finished(transfer_id), fast_worker, timeout=60)

    assert transfer.status == "completed_with_errors", (transfer.errors, fast_worker.log()[-4000:])
    held = sop_uids_held(b, study.uid)
    assert sorted(held) == sorted(study.sop_uids)  # the six good ones, once each; not the damaged one
    bad = transfer.instances.get(sop_instance_uid=bad_uid)
    assert bad.state == InstanceState.FAILED
    errors = {e.get("sop_instance_uid"): e["error"] for e in transfer.errors}
    assert set(errors) == {bad_uid}
    assert "truncated" in errors[bad_uid], errors
    assert transfer.instances.filter(state=InstanceState.STORED).count() == len(study.paths)


# --- 3. priority ----------------------------------------------------------------------------------


# kombu's virtual transports (the demo's filesystem broker) always round-robin between queues; strict
# urgent-before-routine is Redis' queue_order_strategy=priority, which CI (REDIS_URL set) exercises.
@pytest.mark.skipif(
    django_settings.CELERY_BROKER_URL.startswith("filesystem://"), reason="needs Redis as the broker (REDIS_URL)"
)
def test_a_trauma_transfer_starts_before_routine_ones_queued_ahead_of_it(
    worker_broker, region, pacs_pair, ct_study, alice, tmp_path
):
    pacs_pair[1].delete_study(ct_study.uid)
    routine = [push(alice, ct_study.uid, priority="routine") for _ in range(3)]
    # Two: Redis' default round-robin takes a routine task right after the first urgent one.
    trauma = [push(alice, ct_study.uid, priority="trauma") for _ in range(2)]
    worker = start_worker(tmp_path, worker_broker, concurrency=1).start()
    try:
        for transfer_id in [*routine, *trauma]:
            wait_for(lambda t=transfer_id: finished(t), worker, timeout=60)
    finally:
        worker.kill()

    transfers = {t.pk: t for t in Transfer.objects.filter(pk__in=[*routine, *trauma])}
    assert {t.status for t in transfers.values()} == {"completed"}
    started = {pk: t.started_at for pk, t in transfers.items()}
    assert max(started[t] for t in trauma) < min(started[r] for r in routine), started
