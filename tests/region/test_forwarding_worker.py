"""Forwarding through a real worker and real Orthancs: an arrival at A is copied on to the region's VNA, and
a trauma transfer submitted while forwarding copies queue up starts before them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from audit.context import SYSTEM
from dicomkit.sim.synthetic import make_study
from directory.models import SharingAgreement
from region.forwarding import forward_arrival, forwarding_rule_create
from tests.dicom.orthanc import OrthancProcess
from tests.transfers.peers import Study, orthanc_gateway, sop_uids_held, start_orthanc
from tests.transfers.test_worker import finished, wait_for
from tests.transfers.worker import Worker, isolated_broker
from transfers.models import BULK, FINISHED, InstanceState, Priority, Status, Transfer, TransferInstance
from transfers.services import transfer_create

pytestmark = [pytest.mark.interop, pytest.mark.django_db(transaction=True)]

BACKLOG = 6


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, OrthancProcess]]:
    root = tmp_path_factory.mktemp("forwarding-peers")
    started: dict[str, OrthancProcess] = {}
    try:
        for name, aet in (("a", "FWD_PACS_A"), ("b", "FWD_PACS_B"), ("vna", "FWD_VNA")):
            started[name] = start_orthanc(root / name, aet)
        yield started
    finally:
        for server in started.values():
            server.remove()


@pytest.fixture(scope="module")
def studies_at_b(peers, tmp_path_factory) -> list[Study]:
    """Studies B holds: one for the pushed arrival, the rest for the backlog and the trauma push."""
    out = []
    for n in range(BACKLOG + 2):
        paths = make_study(tmp_path_factory.mktemp(f"fwd-{n}"), modality="CT", n_instances=24, seed=300 + n)
        peers["b"].upload(paths)
        out.append(Study(paths[0].parent.name, paths))
    return out


@pytest.fixture
def region(peers, trust_a, trust_b, archive, archive_agreements):
    for trust in (trust_a, trust_b):  # arrivals filed as sent: reconciliation has its own tests
        trust.reconcile_patient_id = trust.prefix_accession = trust.prefix_study_description = False
        trust.save()
    SharingAgreement.objects.create(trust_a=trust_a, trust_b=trust_b)
    return {
        "a": orthanc_gateway(trust_a, peers["a"]),
        "b": orthanc_gateway(trust_b, peers["b"]),
        "vna": orthanc_gateway(archive, peers["vna"]),
    }


@pytest.fixture
def worker(transactional_db, tmp_path: Path) -> Iterator[Worker]:
    """One process, as a small site runs it: every queue, drained urgent first and bulk last."""
    with isolated_broker(tmp_path / "broker") as options:
        running = Worker(tmp_path / "worker", options, concurrency=1, queues="urgent,routine,bulk").start()
        try:
            yield running
        finally:
            running.stop()


def test_an_arrival_at_a_is_copied_on_to_the_vna(
    worker, region, peers, studies_at_b, trust_a, trust_b, archive, amir, bob
):
    forwarding_rule_create(trust=trust_a, archive=archive, trigger="every_arrival", user=amir, actor=SYSTEM)
    study = studies_at_b[0]
    peers["vna"].delete_study(study.uid)

    pushed = transfer_create(
        source=trust_b,
        destination=trust_a,
        study_instance_uids=[study.uid],
        priority="urgent",
        reason="Follow-up",
        requested_by=bob,
    )
    wait_for(lambda: finished(pushed.pk), worker)
    copy = wait_for(
        lambda: Transfer.objects.filter(priority=BULK, status__in=FINISHED).first(), worker, what="the copy"
    )

    assert Transfer.objects.get(pk=pushed.pk).status == Status.COMPLETED
    assert (copy.status, copy.source, copy.destination) == (Status.COMPLETED, trust_a, archive), copy.errors
    assert sorted(sop_uids_held(peers["vna"], study.uid)) == sorted(study.sop_uids)


def test_a_trauma_transfer_submitted_during_a_forwarding_backlog_starts_first(
    worker, region, peers, studies_at_b, trust_a, trust_b, archive, amir, alice, bob
):
    # A holds the backlog's studies (they arrived earlier); their copies to the VNA queue up at once.
    backlog = studies_at_b[1 : BACKLOG + 1]
    for study in backlog:
        peers["a"].upload(study.paths)
        peers["vna"].delete_study(study.uid)
    forwarding_rule_create(trust=trust_a, archive=archive, trigger="every_arrival", user=amir, actor=SYSTEM)
    for study in backlog:
        arrival = Transfer.objects.create(
            source=trust_b,
            destination=trust_a,
            source_gateway=region["b"],
            destination_gateway=region["a"],
            study_instance_uids=[study.uid],
            reason="Earlier arrival",
            requested_by=bob,
            status=Status.COMPLETED,
        )
        TransferInstance.objects.create(
            transfer=arrival,
            sop_instance_uid=study.paths[0].stem,
            study_instance_uid=study.uid,
            state=InstanceState.STORED,
        )
        forward_arrival(transfer_id=arrival.pk)
    copies = Transfer.objects.filter(priority=BULK)  # (the trauma arrival's own copy comes later: not these)
    assert copies.count() == BACKLOG
    copies = Transfer.objects.filter(pk__in=list(copies.values_list("pk", flat=True)))
    wait_for(lambda: copies.filter(started_at__isnull=False).exists(), worker, what="the backlog to start")

    started_before = set(copies.filter(started_at__isnull=False).values_list("pk", flat=True))
    trauma = transfer_create(
        source=trust_b,
        destination=trust_a,
        study_instance_uids=[studies_at_b[-1].uid],
        priority=Priority.TRAUMA,
        reason="Polytrauma, transferred for neurosurgery",
        requested_by=bob,
    )
    wait_for(lambda: finished(trauma.pk), worker, timeout=240)
    wait_for(lambda: copies.filter(status__in=FINISHED).count() == BACKLOG, worker, timeout=240, what="the backlog")

    trauma.refresh_from_db()
    assert trauma.status == Status.COMPLETED, trauma.errors
    assert all(c.status == Status.COMPLETED for c in copies), [(c.status, c.errors) for c in copies]
    waiting_then = copies.exclude(pk__in=started_before)
    overtaken = [c.pk for c in waiting_then if c.started_at < trauma.started_at]
    # The one copy the worker was running carries on; at most one more may have been taken up in the instant
    # between the snapshot and the trauma transfer's message. Every other waiting copy starts after it.
    assert len(overtaken) <= 1, (overtaken, worker.log()[-3000:])
    assert waiting_then.count() >= BACKLOG - 2
    assert all(c.status == Status.COMPLETED for c in copies), [c.errors for c in copies]
    for study in backlog:
        assert sorted(sop_uids_held(peers["vna"], study.uid)) == sorted(study.sop_uids)
