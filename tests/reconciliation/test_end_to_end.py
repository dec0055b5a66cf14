"""Acceptance, end to end: a request at B approved at A, moved by a real Celery worker between two real
Orthanc servers, arrives at B filed under B's own patient ID; an arrival B cannot match waits in the
queue until B's imaging manager resolves it, then lands under the chosen ID. Proven by reading the
instances back from Orthanc B."""

from __future__ import annotations

import io
import random
import time
from pathlib import Path

import pytest
from pydicom import dcmread

from audit.models import AuditEvent
from copies.models import Copy
from dicomkit import nhs
from dicomkit.sim.synthetic import SyntheticPatient, make_study
from directory.models import SharingAgreement
from pulls.models import PullRequest
from reconciliation.models import StudyReconciliation
from tests.helpers import api_as
from tests.transfers.peers import orthanc_gateway
from tests.transfers.test_worker import finished, wait_for
from transfers.models import InstanceState, Transfer

pytestmark = [pytest.mark.interop, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def region(pacs_pair, trust_a, trust_b):
    SharingAgreement.objects.create(trust_a=trust_a, trust_b=trust_b)
    a, b = pacs_pair
    return orthanc_gateway(trust_a, a), orthanc_gateway(trust_b, b)


def patient(seed: int, *, local_id: str, issuer: str, birth_date: str = "19800203") -> SyntheticPatient:
    rng = random.Random(seed)
    return SyntheticPatient(
        nhs_number=nhs.synthetic(rng),
        family_name="Jones",
        given_name="Aoife",
        birth_date=birth_date,
        sex="F",
        local_id=local_id,
        local_issuer=issuer,
    )


def held_at(server, study_uid: str) -> list:
    """Every instance of the study as Orthanc B stores it, parsed from the files it returns."""
    found = server.find("Instance", {"StudyInstanceUID": study_uid})
    return [dcmread(io.BytesIO(server.instance_file(oid)), stop_before_pixels=True) for oid in found]


def other_ids(ds) -> set[tuple[str, str]]:
    return {(str(i.PatientID), str(i.IssuerOfPatientID)) for i in ds.OtherPatientIDsSequence}


def test_a_requested_study_arrives_at_b_under_bs_own_patient_id(
    transfer_worker, region, pacs_pair, bob, amir, tmp_path: Path
):
    a, b = pacs_pair
    at_a = patient(501, local_id="RAA5550001", issuer="RAA_MRN")
    at_b = patient(501, local_id="RBB7770001", issuer="RBB_MRN")  # the same person, B's MRN
    study = make_study(
        tmp_path / "a",
        modality="CT",
        n_instances=6,
        patient=at_a,
        nhs_store="other-ids",
        accession_number="ACC501",
        description="CT head",
        seed=501,
    )
    earlier = make_study(tmp_path / "b", modality="CR", n_instances=1, patient=at_b, nhs_store="other-ids", seed=502)
    a.upload(study)
    b.upload(earlier)
    study_uid = study[0].parent.name

    created = api_as(bob).post(
        "/api/v1/requests/",
        {
            "source_trust": "RAA",
            "nhs_number": at_a.nhs_number,
            "family_name": "Jones",
            "given_name": "Aoife",
            "birth_date": "1980-02-03",
            "sex": "F",
            "priority": "urgent",
            "reason": "Head injury, transferred for neurosurgery",
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert [c["study_instance_uid"] for c in body["candidates"]] == [study_uid]
    assert body["candidates"][0]["mismatches"] == [] and body["status"] == "pending"

    approved = api_as(amir).post(f"/api/v1/requests/{body['id']}/approve/", {}, format="json")
    assert approved.status_code == 200, approved.json()
    transfer = wait_for(lambda: finished(approved.json()["transfer"]), transfer_worker)

    assert transfer.status == "completed", (transfer.errors, transfer_worker.log()[-4000:])
    arrived = held_at(b, study_uid)
    assert sorted(str(ds.SOPInstanceUID) for ds in arrived) == sorted(p.stem for p in study)
    for ds in arrived:
        assert (ds.PatientID, ds.IssuerOfPatientID) == ("RBB7770001", "RBB_MRN")
        assert {("RAA5550001", "RAA_MRN"), (at_a.nhs_number, "NHS")} <= other_ids(ds)
        assert ds.StudyInstanceUID == study_uid
        assert ds.AccessionNumber == "RAAACC501" and ds.StudyDescription == "RAA CT head"
    # The ledger holds the hash of what was sent: the rewritten bytes, as B returns them.
    item = StudyReconciliation.objects.get(transfer=transfer)
    assert (item.outcome, item.patient_id, item.issuer) == ("matched", "RBB7770001", "RBB_MRN")
    assert AuditEvent.objects.filter(event_type="IEP121", trust="RBB", study_uids=[study_uid]).count() == 1
    request = PullRequest.objects.get(pk=body["id"])
    assert request.arrival_notified_at is not None
    assert f"Request {request.pk}: images from Alpha Hospitals have arrived" in transfer_worker.log()


def test_an_unmatched_arrival_waits_then_lands_under_the_id_a_manager_chose(
    transfer_worker, region, pacs_pair, alice, bea, tmp_path: Path
):
    a, b = pacs_pair
    stranger = patient(601, local_id="RAA5550002", issuer="RAA_MRN")  # B has never seen this patient
    study = make_study(tmp_path / "a", modality="CT", n_instances=5, patient=stranger, nhs_store="other-ids", seed=601)
    a.upload(study)
    study_uid = study[0].parent.name
    pushed = api_as(alice).post(
        "/api/v1/transfers/",
        {
            "source_trust": "RAA",
            "destination_trust": "RBB",
            "study_instance_uids": [study_uid],
            "priority": "trauma",
            "reason": "Polytrauma, transferred",
        },
        format="json",
    )
    assert pushed.status_code == 201, pushed.json()
    transfer_id = pushed.json()["id"]

    waiting = wait_for(
        lambda: Transfer.objects.filter(pk=transfer_id, status="awaiting_reconciliation").first(),
        transfer_worker,
        what="the transfer to wait for reconciliation",
    )
    assert held_at(b, study_uid) == []  # nothing filed against a guessed patient
    assert set(waiting.instances.values_list("state", flat=True)) == {InstanceState.HELD}
    assert waiting.completed_at is None
    progress = api_as(alice).get(f"/api/v1/transfers/{transfer_id}/").json()["progress"]
    assert (progress["instances_total"], progress["instances_done"], progress["instances_failed"]) == (5, 0, 0)
    queue = api_as(bea).get("/api/v1/reconciliation/").json()["results"]
    item = next(i for i in queue if i["study_instance_uid"] == study_uid)
    assert (item["hold_reason"], item["held_instances"]) == ("no_match", 5)
    spool = transfer_worker.workdir / "spool" / "reconciliation" / str(item["id"])
    assert sorted(p.stem for p in spool.glob("*.dcm")) == sorted(p.stem for p in study)  # safe on disk
    assert AuditEvent.objects.filter(event_type="IEP122", trust="RBB").exists()

    resolved = api_as(bea).post(
        f"/api/v1/reconciliation/{item['id']}/resolve/", {"patient_id": "RBB0000042"}, format="json"
    )
    assert resolved.status_code == 200, resolved.json()
    transfer = wait_for(lambda: finished(transfer_id), transfer_worker)

    assert transfer.status == "completed", (transfer.errors, transfer_worker.log()[-4000:])
    arrived = held_at(b, study_uid)
    assert sorted(str(ds.SOPInstanceUID) for ds in arrived) == sorted(p.stem for p in study)
    for ds in arrived:
        assert (ds.PatientID, ds.IssuerOfPatientID) == ("RBB0000042", "RBB_MRN")
        assert {("RAA5550002", "RAA_MRN"), (stranger.nhs_number, "NHS")} <= other_ids(ds)
    assert set(transfer.instances.values_list("state", flat=True)) == {InstanceState.STORED}
    assert list(spool.glob("*.dcm")) == []
    assert AuditEvent.objects.filter(event_id="110104", detail__transfer=transfer_id, outcome=0).count() == 1
    # The register of copies: forwarded after reconciliation, under the patient ID B's manager chose.
    copies = Copy.objects.filter(transfer_id=transfer_id)
    assert set(copies.values_list("via", "state", "patient_id", "issuer")) == {
        ("forward", "held", "RBB0000042", "RBB_MRN")
    }
    assert copies.count() == 5


def test_a_birth_date_conflict_is_held_not_filed(transfer_worker, region, pacs_pair, alice, tmp_path: Path):
    a, b = pacs_pair
    sent = patient(701, local_id="RAA5550003", issuer="RAA_MRN", birth_date="19800203")
    local = patient(701, local_id="RBB7770003", issuer="RBB_MRN", birth_date="19810203")  # same NHS number
    study = make_study(tmp_path / "a", modality="CT", n_instances=3, patient=sent, nhs_store="other-ids", seed=701)
    b.upload(make_study(tmp_path / "b", modality="CR", n_instances=1, patient=local, nhs_store="other-ids", seed=702))
    a.upload(study)
    study_uid = study[0].parent.name
    body = {
        "source_trust": "RAA",
        "destination_trust": "RBB",
        "study_instance_uids": [study_uid],
        "priority": "trauma",
        "reason": "Polytrauma",
    }
    transfer_id = api_as(alice).post("/api/v1/transfers/", body, format="json").json()["id"]

    wait_for(
        lambda: Transfer.objects.filter(pk=transfer_id, status="awaiting_reconciliation").exists(),
        transfer_worker,
        what="the transfer to wait for reconciliation",
    )
    item = StudyReconciliation.objects.get(transfer_id=transfer_id)
    assert item.hold_reason == "birth_date_conflict" and "19810203" in item.detail
    assert [c["patient_id"] for c in item.candidates] == ["RBB7770003"]
    assert held_at(b, study_uid) == []


def sent_emails(log: str) -> list[tuple[str, str]]:
    """(recipient, subject) of each message the worker's console email backend wrote to its log."""
    sent = []
    for block in log.split("-" * 79):
        headers = dict(
            line.split(": ", 1) for line in block.strip().splitlines() if line.startswith(("To: ", "Subject: "))
        )
        if "To" in headers and "Subject" in headers:
            sent.append((headers["To"], headers["Subject"]))
    return sent


def test_a_push_that_waited_for_reconciliation_tells_the_requester_and_the_managers_once(
    transfer_worker, region, pacs_pair, alice, bea, tmp_path: Path
):
    a, _ = pacs_pair
    stranger = patient(801, local_id="RAA5550008", issuer="RAA_MRN")  # unknown at B: held for a person
    study = make_study(tmp_path / "a", modality="CT", n_instances=3, patient=stranger, nhs_store="other-ids", seed=801)
    a.upload(study)
    body = {
        "source_trust": "RAA",
        "destination_trust": "RBB",
        "study_instance_uids": [study[0].parent.name],
        "priority": "urgent",
        "reason": "Second opinion on a CT head",
    }
    transfer_id = api_as(alice).post("/api/v1/transfers/", body, format="json").json()["id"]
    wait_for(
        lambda: Transfer.objects.filter(pk=transfer_id, status="awaiting_reconciliation").exists(),
        transfer_worker,
        what="the transfer to wait for reconciliation",
    )
    item = StudyReconciliation.objects.get(transfer_id=transfer_id)
    resolved = api_as(bea).post(
        f"/api/v1/reconciliation/{item.pk}/resolve/", {"patient_id": "RBB0000081"}, format="json"
    )
    assert resolved.status_code == 200, resolved.json()
    transfer = wait_for(lambda: finished(transfer_id), transfer_worker)
    assert transfer.status == "completed", (transfer.errors, transfer_worker.log()[-4000:])

    # As a direct push (tests/transfers/test_worker.py): the requester hears how it went, the destination's
    # imaging managers that images arrived for them to file; each message once.
    expected = [
        ("alice@a.example", f"[Image Exchange] Transfer {transfer_id} completed (RAA to RBB)"),
        ("bea@b.example", f"[Image Exchange] Images arrived from RAA: transfer {transfer_id}"),
    ]
    wait_for(lambda: set(expected) <= set(sent_emails(transfer_worker.log())), transfer_worker, what="the emails")
    time.sleep(1)  # a second message would be sent at once, after the same commit
    about_it = [m for m in sent_emails(transfer_worker.log()) if f"transfer {transfer_id}" in m[1].lower()]
    assert sorted(about_it) == expected
    assert AuditEvent.objects.filter(event_id="110104", detail__transfer=transfer_id).count() == 1
