"""The engine's reconciliation hook in this process against real Orthanc A and B: the trust's switches,
several local patients, and the ledger's hash of what was really sent."""

from __future__ import annotations

import hashlib
import io
import random
from pathlib import Path

import pytest
from pydicom import dcmread

from dicomkit import nhs
from dicomkit.sim.synthetic import SyntheticPatient, make_study
from directory.gateways import gateway_client
from directory.models import SharingAgreement
from reconciliation import services as reconciliation
from reconciliation.models import StudyReconciliation
from tests.transfers.peers import orthanc_gateway
from transfers import engine, services
from transfers.models import InstanceState, Status, Transfer

pytestmark = [pytest.mark.django_db, pytest.mark.interop]


@pytest.fixture
def region(pacs_pair, trust_a, trust_b, settings, tmp_path):
    settings.SPOOL_DIR = tmp_path / "spool"
    SharingAgreement.objects.create(trust_a=trust_a, trust_b=trust_b)
    a, b = pacs_pair
    return orthanc_gateway(trust_a, a), orthanc_gateway(trust_b, b)


def person(seed: int, local_id: str, issuer: str) -> SyntheticPatient:
    return SyntheticPatient(
        nhs_number=nhs.synthetic(random.Random(seed)),
        family_name="Patel",
        given_name="José",
        birth_date="19900101",
        sex="M",
        local_id=local_id,
        local_issuer=issuer,
    )


def send(alice, trust_a, trust_b, paths) -> int:
    transfer = services.transfer_create(
        source=trust_a,
        destination=trust_b,
        study_instance_uids=[paths[0].parent.name],
        priority="urgent",
        reason="Follow-up at the tertiary centre",
        requested_by=alice,
    )
    return transfer.pk


def test_with_patient_id_reconciliation_off_only_the_prefixes_apply(
    region, pacs_pair, alice, trust_a, trust_b, tmp_path: Path
):
    trust_b.reconcile_patient_id = False
    trust_b.save()
    patient = person(901, "RAA0000901", "RAA_MRN")
    paths = make_study(
        tmp_path,
        modality="CT",
        n_instances=3,
        patient=patient,
        nhs_store="other-ids",
        accession_number="X901",
        description="CT abdomen",
        seed=901,
    )
    pacs_pair[0].upload(paths)
    transfer_id = send(alice, trust_a, trust_b, paths)

    clients = engine.clients_for(Transfer.objects.get(pk=transfer_id))
    sent_hashes: dict[str, str] = {}
    real_store = clients.destination.store

    def store_and_note(paths):  # the real C-STORE, noting the hash of exactly the bytes it was given
        paths = list(paths)
        for path in paths:
            sent_hashes[Path(path).stem] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        return real_store(paths)

    clients.destination.store = store_and_note

    assert engine.run(transfer_id, owner="test", clients=clients) == Status.COMPLETED

    b = pacs_pair[1]
    ledger = {r.sop_instance_uid: r.sha256 for r in StudyReconciliation.objects.get().transfer.instances.all()}
    assert ledger == sent_hashes  # the ledger holds the hash of the rewritten bytes that were sent
    for oid in b.find("Instance", {"StudyInstanceUID": paths[0].parent.name}):
        ds = dcmread(io.BytesIO(b.instance_file(oid)), stop_before_pixels=True)
        assert (ds.PatientID, ds.IssuerOfPatientID) == ("RAA0000901", "RAA_MRN")  # as sent
        assert (ds.AccessionNumber, ds.StudyDescription) == ("RAAX901", "RAA CT abdomen")
    assert StudyReconciliation.objects.get().outcome == "unchanged"


def test_several_local_patients_with_the_nhs_number_are_held(region, pacs_pair, alice, trust_a, trust_b, tmp_path):
    sent = person(902, "RAA0000902", "RAA_MRN")
    for n, mrn in enumerate(("RBB0000001", "RBB0000002")):  # a duplicate registration at B
        local = SyntheticPatient(**{**sent.__dict__, "local_id": mrn, "local_issuer": "RBB_MRN"})
        pacs_pair[1].upload(
            make_study(
                tmp_path / f"b{n}", modality="CR", n_instances=1, patient=local, nhs_store="other-ids", seed=910 + n
            )
        )
    paths = make_study(tmp_path / "a", modality="CT", n_instances=2, patient=sent, nhs_store="other-ids", seed=902)
    pacs_pair[0].upload(paths)
    transfer_id = send(alice, trust_a, trust_b, paths)

    assert engine.run(transfer_id, owner="test") == Status.AWAITING_RECONCILIATION

    item = StudyReconciliation.objects.get()
    assert item.hold_reason == "several_matches"
    assert sorted(c["patient_id"] for c in item.candidates) == ["RBB0000001", "RBB0000002"]
    assert set(item.transfer.instances.values_list("state", flat=True)) == {InstanceState.HELD}
    assert pacs_pair[1].find("Instance", {"StudyInstanceUID": paths[0].parent.name}) == []
    # A second pass (a redelivered task) neither re-decides nor sends anything.
    assert engine.run(transfer_id, owner="test-2") == Status.AWAITING_RECONCILIATION
    assert StudyReconciliation.objects.count() == 1


def test_a_forward_run_twice_at_once_leaves_what_either_stored_stored(
    region, pacs_pair, alice, bea, trust_a, trust_b, tmp_path, monkeypatch
):
    """A redelivered forward task can overlap the first: the one that finds the held files gone (the other
    stored and cleared them) must not turn the stored instances into failures."""
    sent = person(903, "RAA0000903", "RAA_MRN")
    for n, mrn in enumerate(("RBB0000003", "RBB0000004")):
        local = SyntheticPatient(**{**sent.__dict__, "local_id": mrn, "local_issuer": "RBB_MRN"})
        pacs_pair[1].upload(
            make_study(
                tmp_path / f"b{n}", modality="CR", n_instances=1, patient=local, nhs_store="other-ids", seed=920 + n
            )
        )
    paths = make_study(tmp_path / "a", modality="CT", n_instances=3, patient=sent, nhs_store="other-ids", seed=903)
    pacs_pair[0].upload(paths)
    transfer_id = send(alice, trust_a, trust_b, paths)
    assert engine.run(transfer_id, owner="test") == Status.AWAITING_RECONCILIATION
    monkeypatch.setattr(reconciliation, "_enqueue_forward", lambda item_id, queue: None)
    item = reconciliation.reconciliation_resolve(
        item=StudyReconciliation.objects.get(), user=bea, patient_id="RBB0000003", issuer="RBB_MRN"
    )
    destination = Transfer.objects.get(pk=transfer_id).destination_gateway
    first = gateway_client(destination)
    real_store = first.store
    overlapping: list[int] = []

    def store_after_the_other_run(chunk):
        chunk = list(chunk)
        if not overlapping:  # the redelivered task runs to its end while this one is about to send
            overlapping.append(reconciliation.reconciliation_forward(item.pk, gateway_client(destination)))
        return real_store(chunk)

    first.store = store_after_the_other_run

    reconciliation.reconciliation_forward(item.pk, first)

    assert overlapping == [3]
    transfer = Transfer.objects.get(pk=transfer_id)
    assert set(transfer.instances.values_list("state", flat=True)) == {InstanceState.STORED}
    assert transfer.status == Status.COMPLETED, transfer.errors
