"""Corrections at the source: who may make one, what it marks and records, and acknowledgement at a holder.
Delivery to real PACS is in test_interop.py."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from copies.models import Copy, CorrectionDelivery
from copies.services import rejection_note_for
from dicomkit import rejection
from tests.helpers import api_as, signed_in
from transfers import completion

from .conftest import stored_transfer

pytestmark = pytest.mark.django_db


@pytest.fixture
def held(trust_a, trust_b, gateway_a, gateway_b, study_files, alice, django_capture_on_commit_callbacks):
    trust_b.reconcile_patient_id = False
    trust_b.save()
    transfer = stored_transfer(
        source=trust_a,
        destination=trust_b,
        source_gateway=gateway_a,
        destination_gateway=gateway_b,
        paths=study_files,
        by=alice,
    )
    transfer.lease_owner = "test"
    transfer.save()
    completion.transfer_complete(transfer.pk, owner="test")
    return study_files[0].parent.name


def reject(user, study_uid: str, **extra):
    body = {"source_trust": "RAA", "study_instance_uid": study_uid, "kind": "rejection", "reason": "113037", **extra}
    return api_as(user).post("/api/v1/corrections/", body, format="json")


def test_only_the_sources_imaging_manager_may_correct(held, alice, bea, dee):
    assert reject(alice, held).status_code == 403  # A's clinician
    assert reject(bea, held).status_code == 403  # the holder's manager
    assert reject(dee, held).status_code == 403
    assert not CorrectionDelivery.objects.exists()


def test_a_rejection_marks_the_copies_audits_and_queues_a_delivery_per_holder(held, amir):
    answer = reject(amir, held, comment="Wrong side marker")
    assert answer.status_code == 201, answer.json()
    assert [(d["holder"], d["state"], d["instances"]) for d in answer.json()["deliveries"]] == [("RBB", "pending", 3)]
    assert set(Copy.objects.values_list("state", flat=True)) == {"rejected"}
    event = AuditEvent.objects.get(event_type="IEP181")
    assert (event.event_id, event.action, event.trust, event.actor_user_id) == ("110103", "D", "RAA", amir.pk)
    assert event.detail["holders"] == ["RBB"] and event.reason == "Wrong side marker"


def test_the_note_references_every_copy_under_the_holders_identity(held, amir, study_files, patient):
    reject(amir, held)
    delivery = CorrectionDelivery.objects.get()
    from pydicom import dcmread

    note = dcmread(rejection_note_for(delivery))
    assert rejection.rejected_by(note) == ("113037", {p.stem for p in study_files})
    assert (note.PatientID, note.StudyInstanceUID) == (patient.local_id, held)
    assert rejection_note_for(delivery).name == f"{delivery.note_sop_instance_uid}.dcm"  # the same note on a retry


def test_a_study_nobody_holds_cannot_be_corrected(held, amir):
    answer = reject(amir, "1.2.826.0.1.3680043.8.498.999")
    assert answer.status_code == 400
    assert "No trust holds a copy" in str(answer.json())


def test_an_identity_correction_needs_a_valid_identity(held, amir):
    body = {"source_trust": "RAA", "study_instance_uid": held, "kind": "identity", "corrected": {"nhs_number": "123"}}
    answer = api_as(amir).post("/api/v1/corrections/", body, format="json")
    assert answer.status_code == 400 and "NHS number" in str(answer.json())


def test_the_holders_imaging_manager_acknowledges_on_the_page(held, amir, bea, bob):
    correction = reject(amir, held).json()
    delivery = CorrectionDelivery.objects.get()
    assert signed_in(bob).post(f"/copies/deliveries/{delivery.pk}/acknowledge/").status_code == 404
    page = signed_in(bea).get("/copies/corrections/")
    assert f"Acknowledge correction {correction['id']}" in page.content.decode()
    assert signed_in(bea).post(f"/copies/deliveries/{delivery.pk}/acknowledge/").status_code == 302
    delivery.refresh_from_db()
    assert delivery.acknowledged_by == bea
    ack = AuditEvent.objects.get(event_type="IEP184")
    assert (ack.event_id, ack.trust, ack.peer_trust, ack.actor_user_id) == ("110110", "RBB", "RAA", bea.pk)


def test_the_correction_form_sends_a_rejection(held, amir):
    page = signed_in(amir).get("/copies/correct/", {"study": held, "source": "RAA"})
    assert page.status_code == 200 and "Send the correction to every holder" in page.content.decode()
    sent = signed_in(amir).post(
        "/copies/correct/",
        {"study": held, "source": "RAA", "kind": "rejection", "reason": "113001", "comment": "Blurred"},
    )
    assert sent.status_code == 302
    assert CorrectionDelivery.objects.get().correction.reason == "113001"
