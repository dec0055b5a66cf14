"""Acceptance with real Orthanc servers (trust A's and trust B's PACS) and a real Celery worker: a pushed CT
rejected at the source reaches B as a rejection note that B's imaging manager sees; an identity correction
reaches B after B's PACS was down; private elements removed or kept as the agreement says; a procedure code
mapped by B's uploaded CSV arrives as the NICIP code. Proven by reading the instances back from Orthanc B."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from audit.models import AuditEvent
from copies.models import Copy, CorrectionDelivery
from dicomkit import rejection
from dicomkit.sim.synthetic import make_study
from dicomkit.spool import sha256_of
from directory.models import SharingAgreement
from tests.helpers import api_as, signed_in
from tests.transfers.peers import orthanc_gateway
from tests.transfers.test_worker import finished, push, wait_for

pytestmark = [pytest.mark.interop, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def region(pacs_pair, trust_a, trust_b):
    trust_b.reconcile_patient_id = trust_b.prefix_accession = trust_b.prefix_study_description = False
    trust_b.save()
    agreement = SharingAgreement.objects.create(trust_a=trust_a, trust_b=trust_b)
    a, b = pacs_pair
    return orthanc_gateway(trust_a, a), orthanc_gateway(trust_b, b), agreement


def held_at(server, study_uid: str) -> list[Dataset]:
    found = server.find("Instance", {"StudyInstanceUID": study_uid})
    return [dcmread(io.BytesIO(server.instance_file(oid)), stop_before_pixels=True) for oid in found]


def with_private_tags(paths: list[Path]) -> list[Path]:
    for path in paths:
        ds = dcmread(path)
        ds.private_block(0x0009, "ACME CT 1.0", create=True).add_new(0x10, "LO", "scanner serial 42")
        ds.private_block(0x0019, "SIEMENS MR HEADER", create=True).add_new(0x0C, "IS", "1000")
        ds.save_as(path)
    return paths


def push_and_wait(user, worker, server_a, paths: list[Path]):
    server_a.upload(paths)
    study_uid = paths[0].parent.name
    transfer_id = push(user, study_uid)
    transfer = wait_for(lambda: finished(transfer_id), worker)
    assert transfer.status == "completed", (transfer.errors, worker.log()[-4000:])
    return study_uid, transfer


def test_a_pushed_ct_rejected_at_the_source_reaches_b_as_a_rejection_note_bs_manager_sees(
    transfer_worker,
    region,
    pacs_pair,
    alice,
    amir,
    bea,
    tmp_path,
):
    a, b = pacs_pair
    study = make_study(tmp_path / "ct", modality="CT", n_instances=4, seed=2211)
    study_uid, transfer = push_and_wait(alice, transfer_worker, a, study)
    sop_uids = {p.stem for p in study}
    assert Copy.objects.filter(transfer=transfer, state="held").count() == 4

    made = api_as(amir).post(
        "/api/v1/corrections/",
        {
            "source_trust": "RAA",
            "study_instance_uid": study_uid,
            "kind": "rejection",
            "reason": "113001",
            "comment": "Motion artefact throughout; repeated",
        },
        format="json",
    )
    assert made.status_code == 201, made.json()
    correction = made.json()
    assert [d["holder"] for d in correction["deliveries"]] == ["RBB"]
    delivery = wait_for(
        lambda: CorrectionDelivery.objects.filter(correction_id=correction["id"], state="sent").first(),
        transfer_worker,
        what="the rejection note to reach B",
    )

    notes = [ds for ds in held_at(b, study_uid) if ds.SOPClassUID == rejection.KOS_SOP_CLASS]
    assert len(notes) == 1 and notes[0].SOPInstanceUID == delivery.note_sop_instance_uid
    assert rejection.rejected_by(
        dcmread(io.BytesIO(b.instance_file(b.find("Instance", {"SOPInstanceUID": notes[0].SOPInstanceUID})[0])))
    ) == ("113001", sop_uids)
    assert set(Copy.objects.filter(transfer=transfer).values_list("state", flat=True)) == {"rejected"}

    home = signed_in(bea).get("/").content.decode()
    assert f"Correction {correction['id']}" in home and "Rejected for Quality Reasons" in home
    queue = signed_in(bea).get("/reconciliation/").content.decode()
    assert f"Acknowledge correction {correction['id']}" in queue
    acknowledged = api_as(bea).post(f"/api/v1/corrections/{correction['id']}/acknowledge/", format="json")
    assert acknowledged.status_code == 200 and acknowledged.json()["deliveries"][0]["acknowledged_by"] == bea.email
    trail = AuditEvent.objects.filter(study_uids=[study_uid])
    assert trail.filter(event_id="110103", action="D", trust="RAA", actor_user_id=amir.pk).count() == 1
    assert trail.filter(event_id="110104", event_type="IEP183", trust="RAA", peer_trust="RBB").count() == 1
    assert trail.filter(event_id="110110", event_type="IEP184", trust="RBB", actor_user_id=bea.pk).count() == 1


def test_an_identity_correction_reaches_a_holder_that_was_down_when_it_is_back(
    transfer_worker,
    region,
    pacs_pair,
    alice,
    amir,
    tmp_path,
):
    a, b = pacs_pair
    study = make_study(tmp_path / "mr", modality="MR", n_instances=3, seed=2212)
    study_uid, _ = push_and_wait(alice, transfer_worker, a, study)

    b.stop()
    try:
        made = api_as(amir).post(
            "/api/v1/corrections/",
            {
                "source_trust": "RAA",
                "study_instance_uid": study_uid,
                "kind": "identity",
                "comment": "Wrong patient selected from the worklist",
                "corrected": {"patient_name": "CORRECTED^Patient", "birth_date": "1961-07-30"},
            },
            format="json",
        )
        assert made.status_code == 201, made.json()
        delivery_id = made.json()["deliveries"][0]["id"]
        waiting = wait_for(
            lambda: CorrectionDelivery.objects.filter(pk=delivery_id).exclude(last_error="").first(),
            transfer_worker,
            what="the first delivery to fail while B is down",
        )
        assert waiting.state == "pending" and waiting.sent_at is None
    finally:
        b.start()
    sent = wait_for(
        lambda: CorrectionDelivery.objects.filter(pk=delivery_id, state="sent").first(),
        transfer_worker,
        timeout=180,
        what="the correction to reach B once it is back",
    )
    assert sent.attempts >= 2 and sent.last_error == ""
    held = held_at(b, study_uid)
    notes = [ds for ds in held if ds.SOPClassUID == rejection.KOS_SOP_CLASS]
    assert [str(n.ConceptNameCodeSequence[0].CodeValue) for n in notes] == ["113038"]
    # The agreement allows corrected instances: new SOP Instance UIDs, the corrected identity, the same study.
    corrected = [ds for ds in held if str(ds.PatientName) == "CORRECTED^Patient"]
    assert len(corrected) == 3 and sent.corrected_sent == 3
    assert not {str(ds.SOPInstanceUID) for ds in corrected} & {p.stem for p in study}
    assert {ds.PatientBirthDate for ds in corrected} == {"19610730"}
    assert Copy.objects.filter(via="correction", holder__ods_code="RBB", study_instance_uid=study_uid).count() == 3
    assert AuditEvent.objects.filter(event_id="110110", event_type="IEP182", study_uids=[study_uid]).count() == 1


def test_private_elements_go_under_remove_and_stay_under_keep(
    transfer_worker,
    region,
    pacs_pair,
    alice,
    tmp_path,
):
    a, b = pacs_pair
    agreement = region[2]
    agreement.private_elements = "remove"
    agreement.save()
    removed = with_private_tags(make_study(tmp_path / "r", modality="CT", n_instances=2, seed=2213))
    study_uid, transfer = push_and_wait(alice, transfer_worker, a, removed)
    for ds in held_at(b, study_uid):
        assert not any(elem.tag.is_private for elem in ds)
        assert ds.DiffusionBValue == 1000.0  # the known private b-value, converted before removal
    # The ledger holds the hash of the bytes sent (coerced), not of those the source gave.
    sent = dict(transfer.instances.values_list("sop_instance_uid", "sha256"))
    assert all(sent[p.stem] and sent[p.stem] != sha256_of(p) for p in removed)

    agreement.private_elements = "keep"
    agreement.save()
    time.sleep(0.1)
    kept = with_private_tags(make_study(tmp_path / "k", modality="CT", n_instances=2, seed=2214))
    study_uid, _ = push_and_wait(alice, transfer_worker, a, kept)
    for ds in held_at(b, study_uid):
        assert ds.private_block(0x0009, "ACME CT 1.0")[0x10].value == "scanner serial 42"


def test_a_code_mapped_by_an_uploaded_csv_arrives_as_the_nicip_code(
    transfer_worker,
    region,
    pacs_pair,
    alice,
    bea,
    tmp_path,
):
    a, b = pacs_pair
    table = (
        "sender_scheme,sender_code,description_pattern,nicip_code,nicip_meaning,snomed_code,snomed_meaning\n"
        "RAA,CTHD1,,XCTHE,CT Head (synthetic),7000001002,CT of head (synthetic)\n"
    )
    uploaded = signed_in(bea).post("/copies/mapping/RBB/", {"file": _named(table.encode(), "map.csv")})
    assert uploaded.status_code == 302, uploaded.content.decode()[-2000:]
    study = make_study(tmp_path / "c", modality="CT", n_instances=2, seed=2215)
    for path in study:
        ds = dcmread(path)
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "CTHD1", "RAA", "CT head plain"
        ds.ProcedureCodeSequence = Sequence([code])
        ds.save_as(path)
    study_uid, _ = push_and_wait(alice, transfer_worker, a, study)
    arrived = held_at(b, study_uid)
    assert sorted(str(ds.SOPInstanceUID) for ds in arrived) == sorted(p.stem for p in study)  # UIDs unchanged
    for ds in arrived:
        item = ds.ProcedureCodeSequence[0]
        assert (item.CodeValue, item.CodingSchemeDesignator) == ("XCTHE", "NICIP")
        assert item.EquivalentCodeSequence[0].CodeValue == "7000001002"


def _named(data: bytes, name: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="text/csv")
