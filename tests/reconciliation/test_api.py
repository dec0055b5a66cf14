"""The reconciliation queue API and the trust's reconciliation switches: who may do what, and bad input
refused with nothing changed."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from reconciliation.models import StudyReconciliation
from tests.helpers import api_as
from transfers.models import InstanceState, Status, Transfer, TransferInstance

pytestmark = pytest.mark.django_db

STUDY = "1.2.826.0.1.3680043.8.498.30"


@pytest.fixture
def held(trust_a, trust_b, gateway_a, gateway_b, alice) -> StudyReconciliation:
    transfer = Transfer.objects.create(
        source=trust_a,
        destination=trust_b,
        source_gateway=gateway_a,
        destination_gateway=gateway_b,
        study_instance_uids=[STUDY],
        priority="trauma",
        reason="Trauma transfer",
        requested_by=alice,
        status=Status.AWAITING_RECONCILIATION,
    )
    TransferInstance.objects.create(
        transfer=transfer, sop_instance_uid=f"{STUDY}.1", study_instance_uid=STUDY, state=InstanceState.HELD
    )
    return StudyReconciliation.objects.create(
        transfer=transfer,
        destination=trust_b,
        study_instance_uid=STUDY,
        outcome="held",
        hold_reason="no_match",
        nhs_number="9434765919",
        patient_name="Jones^Aoife",
        birth_date="19800203",
        source_patient_id="RAA1234567",
        source_issuer="RAA_MRN",
    )


def test_the_receiving_trusts_imaging_manager_sees_the_queue(held, bea):
    body = api_as(bea).get("/api/v1/reconciliation/").json()
    assert [(i["id"], i["hold_reason"], i["held_instances"]) for i in body["results"]] == [(held.pk, "no_match", 1)]
    assert body["results"][0]["source_trust"] == "RAA"


def test_nobody_else_sees_the_queue(held, bob, amir, alice):
    for user in (bob, amir, alice):  # B's clinician, and A (the sender) of course not
        assert api_as(user).get("/api/v1/reconciliation/").json()["results"] == []
        assert api_as(user).get(f"/api/v1/reconciliation/{held.pk}/").status_code == 404


def test_resolving_with_an_empty_patient_id_is_refused_and_changes_nothing(held, bea):
    response = api_as(bea).post(f"/api/v1/reconciliation/{held.pk}/resolve/", {"patient_id": "  "}, format="json")

    assert response.status_code == 400
    assert "patient_id" in response.json()
    held.refresh_from_db()
    assert held.outcome == "held" and held.patient_id == ""
    assert not AuditEvent.objects.filter(event_type="IEP121").exists()


def test_a_patient_id_with_a_backslash_is_refused(held, bea):
    url = f"/api/v1/reconciliation/{held.pk}/resolve/"
    response = api_as(bea).post(url, {"patient_id": "RBB\\1"}, format="json")
    assert response.status_code == 400
    held.refresh_from_db()
    assert held.outcome == "held"


def test_an_outsider_cannot_resolve(held, bob):
    response = api_as(bob).post(f"/api/v1/reconciliation/{held.pk}/resolve/", {"patient_id": "X1"}, format="json")
    assert response.status_code == 404
    held.refresh_from_db()
    assert held.outcome == "held"


def test_resolving_records_the_choice_and_resolving_twice_is_refused(
    held, bea, monkeypatch, django_capture_on_commit_callbacks
):
    from reconciliation import services

    forwarded: list[int] = []
    monkeypatch.setattr(services, "_enqueue_forward", lambda item_id, queue: forwarded.append(item_id))
    url = f"/api/v1/reconciliation/{held.pk}/resolve/"
    with django_capture_on_commit_callbacks(execute=True):
        response = api_as(bea).post(url, {"patient_id": "RBB0001", "issuer": ""}, format="json")

    assert response.status_code == 200, response.json()
    assert (response.json()["outcome"], response.json()["patient_id"], response.json()["issuer"]) == (
        "resolved",
        "RBB0001",
        "RBB_MRN",  # the trust's own issuer when none is given
    )
    assert forwarded == [held.pk]
    event = AuditEvent.objects.get(event_type="IEP121")
    assert event.trust == "RBB" and event.patient_id == "RBB0001" and event.actor_label == "bea@b.example"

    again = api_as(bea).post(url, {"patient_id": "RBB0002"}, format="json")
    assert again.status_code == 400
    held.refresh_from_db()
    assert held.patient_id == "RBB0001"


def test_accepting_as_a_new_patient_files_under_the_nhs_number(held, bea, monkeypatch):
    from reconciliation import services

    monkeypatch.setattr(services, "_enqueue_forward", lambda item_id, queue: None)
    url = f"/api/v1/reconciliation/{held.pk}/resolve/"
    response = api_as(bea).post(url, {"new_patient": True}, format="json")
    assert response.status_code == 200
    assert (response.json()["patient_id"], response.json()["issuer"]) == ("9434765919", "NHS")
    assert response.json()["new_patient"] is True


# --- the trust's switches -------------------------------------------------------------------------


def test_an_imaging_manager_turns_off_reconciliation_parts_for_their_own_trust(bea, trust_b):
    response = api_as(bea).patch("/api/v1/trusts/RBB/", {"prefix_accession": False}, format="json")

    assert response.status_code == 200, response.json()
    trust_b.refresh_from_db()
    assert trust_b.prefix_accession is False and trust_b.reconcile_patient_id is True


def test_an_imaging_manager_may_not_change_other_trust_fields(bea, trust_b):
    response = api_as(bea).patch("/api/v1/trusts/RBB/", {"name": "Renamed", "prefix_accession": False}, format="json")
    assert response.status_code == 403
    trust_b.refresh_from_db()
    assert trust_b.name == "Beta District General" and trust_b.prefix_accession is True


def test_an_imaging_manager_may_not_change_another_trusts_switches(bea, trust_a):
    response = api_as(bea).patch("/api/v1/trusts/RAA/", {"reconcile_patient_id": False}, format="json")
    assert response.status_code == 403
    trust_a.refresh_from_db()
    assert trust_a.reconcile_patient_id is True


def test_a_clinician_may_not_change_the_switches(bob, trust_b):
    response = api_as(bob).patch("/api/v1/trusts/RBB/", {"reconcile_patient_id": False}, format="json")
    assert response.status_code == 403
