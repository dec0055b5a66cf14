"""End to end through a real Celery worker process: API push → worker → Orthanc B's own index."""

from __future__ import annotations

import time

import pytest

from audit.models import AuditEvent
from directory.models import SharingAgreement
from tests.helpers import api_as
from transfers import tasks
from transfers.models import FINISHED, InstanceState, Transfer

from .peers import orthanc_gateway, sop_uids_held
from .worker import LEASE_SECONDS

pytestmark = [pytest.mark.interop, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def region(pacs_pair, trust_a, trust_b):
    SharingAgreement.objects.create(trust_a=trust_a, trust_b=trust_b)
    a, b = pacs_pair
    return orthanc_gateway(trust_a, a), orthanc_gateway(trust_b, b)


def push(user, study_uid: str, priority: str = "trauma") -> int:
    body = {
        "source_trust": "RAA",
        "destination_trust": "RBB",
        "study_instance_uids": [study_uid],
        "priority": priority,
        "reason": "Polytrauma, transferred for neurosurgery",
    }
    response = api_as(user).post("/api/v1/transfers/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def wait_for(predicate, worker, timeout: float = 120.0, what: str = "the transfer to finish"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; worker log:\n{worker.log()[-6000:]}")


def finished(transfer_id: int) -> Transfer | None:
    transfer = Transfer.objects.get(pk=transfer_id)
    return transfer if transfer.status in FINISHED else None


def test_a_pushed_study_arrives_at_b_through_a_real_worker(
    transfer_worker, region, pacs_pair, ct_study, alice, bob, bea
):
    pacs_pair[1].delete_study(ct_study.uid)
    transfer_id = push(alice, ct_study.uid)

    transfer = wait_for(lambda: finished(transfer_id), transfer_worker)

    assert transfer.status == "completed", (transfer.errors, transfer_worker.log()[-4000:])
    assert sorted(sop_uids_held(pacs_pair[1], ct_study.uid)) == sorted(ct_study.sop_uids)
    body = api_as(bob).get(f"/api/v1/transfers/{transfer_id}/").json()
    n = len(ct_study.paths)
    assert body["progress"]["instances_total"] == body["progress"]["instances_done"] == n
    assert body["progress"]["instances_failed"] == 0 and body["progress"]["bytes_done"] > 0
    assert AuditEvent.objects.filter(event_id="110104", outcome=0, detail__transfer=transfer_id).count() == 1
    # The worker's email backend is the console (as in the demo): its log holds the messages it sent.
    wait_for(lambda: f"Images arrived from RAA: transfer {transfer_id}" in transfer_worker.log(), transfer_worker)
    assert f"Transfer {transfer_id} completed (RAA to RBB)" in transfer_worker.log()


def test_killing_the_worker_mid_transfer_loses_and_duplicates_nothing(
    transfer_worker, region, pacs_pair, big_study, alice, settings
):
    settings.TRANSFER_LEASE_SECONDS = LEASE_SECONDS  # the sweeper runs here, in the test process
    b = pacs_pair[1]
    b.delete_study(big_study.uid)
    transfer_id = push(alice, big_study.uid, priority="routine")
    stored = Transfer.objects.get(pk=transfer_id).instances.filter(state=InstanceState.STORED)
    wait_for(lambda: stored.count() >= 16, transfer_worker, what="the first instances to be stored")

    transfer_worker.kill()
    done_before = stored.count()
    assert done_before < len(big_study.paths), "the transfer finished before the worker could be killed"
    transfer_worker.start()
    # What beat's sweeper does every minute: a transfer whose lease has lapsed goes back on the queue.
    # (With Redis the broker may redeliver the unacknowledged task first; the lease keeps them apart.)
    time.sleep(2 * LEASE_SECONDS + 1)
    tasks.sweep_stalled()

    transfer = wait_for(lambda: finished(transfer_id), transfer_worker)

    assert transfer.status == "completed", (transfer.errors, transfer_worker.log()[-4000:])
    held = sop_uids_held(b, big_study.uid)
    assert len(held) == len(set(held)) == len(big_study.paths)
    assert set(held) == big_study.sop_uids
    assert set(transfer.instances.values_list("state", flat=True)) == {InstanceState.STORED}
    assert transfer.attempts >= 2
    assert AuditEvent.objects.filter(event_id="110104", detail__transfer=transfer_id).count() == 1
