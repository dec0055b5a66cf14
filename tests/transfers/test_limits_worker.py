"""Gateway concurrency limits through a real Celery worker, and heartbeats during long C-FINDs."""

from __future__ import annotations

import time

import pytest

from directory.models import SharingAgreement
from transfers import engine, services
from transfers.models import Status, Transfer

from .peers import orthanc_gateway, sop_uids_held
from .test_worker import finished, push, wait_for

pytestmark = [pytest.mark.interop, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def region(pacs_pair, trust_a, trust_b):
    SharingAgreement.objects.create(trust_a=trust_a, trust_b=trust_b)
    a, b = pacs_pair
    return orthanc_gateway(trust_a, a), orthanc_gateway(trust_b, b)


@pytest.mark.parametrize("limited", ["source", "destination"])
def test_a_gateway_limited_to_one_takes_one_transfer_at_a_time(
    transfer_worker, region, pacs_pair, ct_study, big_study, alice, limited
):
    gateway = region[0] if limited == "source" else region[1]
    gateway.max_concurrency = 1
    gateway.save()
    b = pacs_pair[1]
    b.delete_study(ct_study.uid)
    b.delete_study(big_study.uid)
    # Two worker processes, two transfers queued together: without the limit they would run side by side.
    ids = [push(alice, big_study.uid, priority="routine"), push(alice, ct_study.uid, priority="routine")]

    done = [wait_for(lambda i=i: finished(i), transfer_worker, timeout=180) for i in ids]

    assert [t.status for t in done] == ["completed", "completed"], [t.errors for t in done]
    first, second = sorted(done, key=lambda t: t.started_at)
    assert first.completed_at <= second.started_at, (
        f"ran side by side: {first.started_at} to {first.completed_at} and {second.started_at} to {second.completed_at}"
    )
    assert second.attempts == 1 and second.transient_failures == 0  # it waited, it did not fail
    assert set(sop_uids_held(b, big_study.uid)) == big_study.sop_uids
    assert set(sop_uids_held(b, ct_study.uid)) == ct_study.sop_uids


def test_the_lease_stays_fresh_while_a_long_c_find_runs(region, pacs_pair, ct_study, alice, trust_a, trust_b, settings):
    settings.TRANSFER_LEASE_SECONDS = 6  # a beat every second
    pacs_pair[1].delete_study(ct_study.uid)
    transfer = services.transfer_create(
        source=trust_a,
        destination=trust_b,
        study_instance_uids=[ct_study.uid],
        priority="routine",
        reason="Follow-up",
        requested_by=alice,
    )
    clients = engine.clients_for(transfer)
    real_find = clients.source.find_series
    seen: list = []

    def slow_find(study_uid):
        before = Transfer.objects.get(pk=transfer.pk).heartbeat_at
        time.sleep(3.5)  # a PACS taking its time to count a large study's series
        seen.append((before, Transfer.objects.get(pk=transfer.pk).heartbeat_at))
        return real_find(study_uid)

    clients.source.find_series = slow_find

    assert engine.run(transfer.pk, owner="w1", clients=clients) == Status.COMPLETED
    before, after = seen[0]
    assert (after - before).total_seconds() >= 2, "no heartbeat while the C-FIND ran"
