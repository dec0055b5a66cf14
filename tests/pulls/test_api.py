"""The requests API (SPEC section 7): who may ask, approve and decline, and every bad input refused with
nothing changed."""

from __future__ import annotations

import pytest
from django.core import mail

from audit.models import AuditEvent
from directory.models import SharingAgreement
from pulls.models import PullRequest
from tests.helpers import api_as
from transfers.models import Transfer

from .conftest import NHS_NUMBER, STUDY_1, STUDY_2

pytestmark = pytest.mark.django_db

URL = "/api/v1/requests/"


def ask(user, **overrides):
    body = {
        "source_trust": "RAA",
        "nhs_number": "943 476 5919",
        "family_name": "Jones",
        "given_name": "Aoife",
        "birth_date": "1980-02-03",
        "sex": "F",
        "date_from": "2020-01-01",
        "date_to": "2026-12-31",
        "modalities": ["CT", "MR"],
        "priority": "urgent",
        "reason": "Head injury, transferred for neurosurgery",
        **overrides,
    }
    return api_as(user).post(URL, body, format="json")


def test_a_clinician_requests_images_and_a_down_pacs_is_reported_not_hidden(bob, agreement, gateway_a):
    # gateway_a points at a port where nothing listens: the request is still recorded, with the reason.
    response = ask(bob)

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["requesting_trust"] == "RBB" and body["source_trust"] == "RAA"
    assert body["nhs_number"] == NHS_NUMBER and body["status"] == "pending"
    assert body["candidates"] == [] and "could not be searched" in body["candidates_error"]
    assert body["modalities"] == ["CT", "MR"] and body["requested_by"] == "bob@b.example"
    event = AuditEvent.objects.get(event_type="IEP111")
    assert (event.trust, event.peer_trust, event.nhs_number) == ("RAA", "RBB", NHS_NUMBER)
    assert event.reason == "Head injury, transferred for neurosurgery"


def test_an_invalid_nhs_number_is_refused_and_nothing_is_recorded(bob, agreement, gateway_a):
    response = ask(bob, nhs_number="943 476 5918")

    assert response.status_code == 400
    assert "check digit" in str(response.json()["nhs_number"])
    assert not PullRequest.objects.exists()
    assert not AuditEvent.objects.filter(event_type="IEP111").exists()


def test_every_bad_field_is_named_at_once(bob, agreement, gateway_a):
    response = ask(bob, family_name=" ", birth_date="2999-01-01", modalities=["computed tomography"], reason="")

    assert response.status_code == 400
    assert {"family_name", "reason"} <= set(response.json())
    assert not PullRequest.objects.exists()


def test_a_request_to_a_trust_with_no_agreement_is_refused(bob, trust_a, gateway_a):
    response = ask(bob)

    assert response.status_code == 400
    assert "No active sharing agreement" in str(response.json()["source_trust"])
    assert not PullRequest.objects.exists()


def test_an_agreement_in_the_other_direction_only_does_not_allow_a_request(bob, trust_a, trust_b, gateway_a):
    SharingAgreement.objects.create(trust_a=trust_a, trust_b=trust_b, a_to_b=False, b_to_a=True)
    response = ask(bob)  # images would travel A → B, which the agreement does not allow
    assert response.status_code == 400
    assert not PullRequest.objects.exists()


def test_only_clinicians_may_request(bea, agreement, gateway_a):
    response = ask(bea)
    assert response.status_code == 403
    assert not PullRequest.objects.exists()


def test_an_imaging_manager_at_the_source_approves_chosen_studies(
    pending, amir, cget_gateway_a, gateway_b, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_as(amir).post(f"{URL}{pending.pk}/approve/", {"study_instance_uids": [STUDY_2]}, format="json")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "approved" and body["approved_study_uids"] == [STUDY_2]
    assert body["decided_by"] == "amir@a.example" and body["auto_approved"] is False
    transfer = Transfer.objects.get(pk=body["transfer"])
    assert (transfer.source.ods_code, transfer.destination.ods_code) == ("RAA", "RBB")
    assert transfer.study_instance_uids == [STUDY_2] and transfer.requested_by.email == "bob@b.example"
    assert enqueued == [(transfer.pk, "urgent")]
    event = AuditEvent.objects.get(event_type="IEP112")
    assert event.study_uids == [STUDY_2] and event.actor_label == "amir@a.example"
    assert [m.to for m in mail.outbox] == [["bob@b.example"]]
    assert "approved" in mail.outbox[0].subject and NHS_NUMBER not in mail.outbox[0].body


def test_approving_with_no_studies_named_sends_every_candidate(pending, alice, cget_gateway_a, gateway_b, enqueued):
    response = api_as(alice).post(f"{URL}{pending.pk}/approve/", {}, format="json")
    assert response.status_code == 200
    assert Transfer.objects.get().study_instance_uids == [STUDY_1, STUDY_2]


def test_a_study_that_is_not_a_candidate_cannot_be_approved(pending, amir, cget_gateway_a, gateway_b, enqueued):
    other = "1.2.826.0.1.3680043.8.498.99"
    response = api_as(amir).post(f"{URL}{pending.pk}/approve/", {"study_instance_uids": [other]}, format="json")

    assert response.status_code == 400
    assert other in str(response.json()["study_instance_uids"])
    pending.refresh_from_db()
    assert pending.status == "pending" and not Transfer.objects.exists()


def test_approving_twice_is_refused_and_changes_nothing(pending, amir, alice, cget_gateway_a, gateway_b, enqueued):
    first = api_as(amir).post(f"{URL}{pending.pk}/approve/", {}, format="json")
    assert first.status_code == 200

    second = api_as(alice).post(f"{URL}{pending.pk}/approve/", {}, format="json")

    assert second.status_code == 400
    assert "already been approved" in str(second.json())
    assert Transfer.objects.count() == 1
    pending.refresh_from_db()
    assert pending.decided_by.email == "amir@a.example"
    assert AuditEvent.objects.filter(event_type="IEP112").count() == 1


def test_the_requester_cannot_approve_their_own_request(pending, bob, cget_gateway_a, gateway_b, enqueued):
    response = api_as(bob).post(f"{URL}{pending.pk}/approve/", {}, format="json")
    assert response.status_code == 403
    pending.refresh_from_db()
    assert pending.status == "pending" and not Transfer.objects.exists()


def test_someone_elses_request_does_not_exist_for_an_outsider(pending, carol, cget_gateway_a, gateway_b, enqueued):
    assert api_as(carol).get(f"{URL}{pending.pk}/").status_code == 404
    assert api_as(carol).get(URL).json()["results"] == []
    response = api_as(carol).post(f"{URL}{pending.pk}/approve/", {}, format="json")
    assert response.status_code == 404
    pending.refresh_from_db()
    assert pending.status == "pending" and not Transfer.objects.exists()


def test_an_approver_declines_with_a_reason_and_the_requester_is_told(
    pending, amir, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_as(amir).post(f"{URL}{pending.pk}/decline/", {"reason": "Not our patient"}, format="json")

    assert response.status_code == 200
    assert response.json()["status"] == "declined" and response.json()["decline_reason"] == "Not our patient"
    assert AuditEvent.objects.get(event_type="IEP113").reason == "Not our patient"
    assert mail.outbox[0].to == ["bob@b.example"] and "Not our patient" in mail.outbox[0].body


def test_a_requester_who_has_left_the_trust_is_not_told_of_the_decision(
    pending, amir, bob, django_capture_on_commit_callbacks
):
    """Told only while they may open the request's page: the decision mail goes to nobody once they left."""
    bob.memberships.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        response = api_as(amir).post(f"{URL}{pending.pk}/decline/", {"reason": "Not our patient"}, format="json")

    assert response.status_code == 200
    assert mail.outbox == []


def test_declining_without_a_reason_is_refused(pending, amir):
    response = api_as(amir).post(f"{URL}{pending.pk}/decline/", {"reason": ""}, format="json")
    assert response.status_code == 400 and "reason" in response.json()
    pending.refresh_from_db()
    assert pending.status == "pending"


def test_a_declined_request_cannot_then_be_approved(pending, amir, cget_gateway_a, gateway_b, enqueued):
    api_as(amir).post(f"{URL}{pending.pk}/decline/", {"reason": "Wrong patient"}, format="json")
    response = api_as(amir).post(f"{URL}{pending.pk}/approve/", {}, format="json")
    assert response.status_code == 400
    assert not Transfer.objects.exists()


def test_both_trusts_see_the_request_in_their_lists(pending, amir, bob):
    assert [r["id"] for r in api_as(amir).get(f"{URL}?direction=incoming").json()["results"]] == [pending.pk]
    assert api_as(amir).get(f"{URL}?direction=outgoing").json()["results"] == []
    assert [r["id"] for r in api_as(bob).get(f"{URL}?direction=outgoing").json()["results"]] == [pending.pk]


def test_the_source_trusts_approvers_are_emailed_about_a_new_request(
    bob, amir, alice, ada, agreement, gateway_a, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        assert ask(bob).status_code == 201
    assert [sorted(m.to) for m in mail.outbox] == [["alice@a.example", "amir@a.example"]]
    assert NHS_NUMBER not in mail.outbox[0].body


def test_a_request_says_where_it_stands_and_who_acts_next(bob, trust_a, trust_b):
    """Requests stopped at "Approved" for ever: the API now carries the same stage as the pages."""
    from pulls.models import PullRequest

    pull = PullRequest.objects.create(
        requesting_trust=trust_b,
        source_trust=trust_a,
        requested_by=bob,
        nhs_number="9434765919",
        family_name="Khan",
        given_name="Priya",
        birth_date="1992-12-30",
        sex="F",
        reason="Follow-up",
    )
    body = api_as(bob).get(f"/api/v1/requests/{pull.pk}/").json()
    assert body["stage"]["key"] == "waiting_approval" and "Alpha Hospitals" in body["stage"]["next_step"]
