"""The push API (SPEC section 7): who may push, what is refused, who sees a transfer, cancel and retry."""

from __future__ import annotations

import pytest

from accounts.models import Membership
from audit.models import AuditEvent
from directory.models import SharingAgreement
from tests.helpers import api_as
from transfers import tasks
from transfers.models import InstanceState, Status, Transfer, TransferInstance

from .conftest import OTHER_STUDY, STUDY

pytestmark = pytest.mark.django_db

URL = "/api/v1/transfers/"


def push(user, **overrides):
    body = {
        "source_trust": "RAA",
        "destination_trust": "RBB",
        "study_instance_uids": [STUDY],
        "priority": "urgent",
        "reason": "Head injury, transferred to the trauma centre",
        **overrides,
    }
    return api_as(user).post(URL, body, format="json")


@pytest.fixture
def enqueued(monkeypatch) -> list[tuple[int, str]]:
    calls: list[tuple[int, str]] = []
    monkeypatch.setattr(tasks, "enqueue", lambda transfer_id, queue: calls.append((transfer_id, queue)))
    return calls


@pytest.fixture
def transfer(alice, agreement, cget_gateway_a, gateway_b) -> Transfer:
    response = push(alice)
    assert response.status_code == 201, response.json()
    return Transfer.objects.get(pk=response.json()["id"])


def test_a_clinician_pushes_to_a_trust_with_an_agreement(
    alice, agreement, cget_gateway_a, gateway_b, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = push(alice)

    assert response.status_code == 201
    body = response.json()
    assert body["source_trust"] == "RAA" and body["destination_trust"] == "RBB"
    assert body["status"] == "queued" and body["requested_by"] == "alice@a.example"
    assert body["progress"] == {"instances_total": 0, "instances_done": 0, "instances_failed": 0, "bytes_done": 0}
    assert enqueued == [(body["id"], "urgent")]


def test_a_push_is_on_the_audit_trail_with_its_reason(transfer):
    event = AuditEvent.objects.get(event_id="110102", event_type="IEP101")
    assert (event.trust, event.peer_trust) == ("RAA", "RBB")
    assert event.study_uids == [STUDY]
    assert event.reason == "Head injury, transferred to the trauma centre"
    assert event.actor_label == "alice@a.example"
    assert event.detail["transfer"] == transfer.pk


def test_routine_work_goes_to_the_routine_queue(
    alice, agreement, cget_gateway_a, gateway_b, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        push(alice, priority="routine")
    assert [queue for _, queue in enqueued] == ["routine"]


def test_trauma_work_goes_to_the_urgent_queue(
    alice, agreement, cget_gateway_a, gateway_b, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        push(alice, priority="trauma")
    assert [queue for _, queue in enqueued] == ["urgent"]


def test_nobody_pushes_from_a_trust_they_do_not_belong_to(bob, agreement, cget_gateway_a, gateway_b):
    response = push(bob)
    assert response.status_code == 403
    assert not Transfer.objects.exists()
    assert not AuditEvent.objects.filter(event_id="110102").exists()


def test_an_imaging_manager_does_not_push(amir, agreement, cget_gateway_a, gateway_b):
    assert push(amir).status_code == 403


def test_a_push_needs_an_agreement_in_that_direction(alice, trust_a, trust_b, cget_gateway_a, gateway_b):
    SharingAgreement.objects.create(trust_a=trust_a, trust_b=trust_b, a_to_b=False, b_to_a=True)
    response = push(alice)
    assert response.status_code == 400
    assert "No active sharing agreement" in str(response.json()["destination_trust"])
    assert not Transfer.objects.exists()


def test_an_inactive_agreement_allows_nothing(alice, agreement, cget_gateway_a, gateway_b):
    SharingAgreement.objects.filter(pk=agreement.pk).update(active=False)
    assert push(alice).status_code == 400


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reason", "   "),
        ("priority", "whenever"),
        ("study_instance_uids", []),
        ("study_instance_uids", ["not-a-uid"]),
        ("study_instance_uids", ["1.2.3.04"]),
        ("destination_trust", "ZZZ"),
    ],
)
def test_bad_input_is_refused_field_by_field(alice, agreement, cget_gateway_a, gateway_b, field, value):
    response = push(alice, **{field: value})
    assert response.status_code == 400
    assert field in response.json()
    assert not Transfer.objects.exists()


def test_a_source_without_a_gateway_is_refused_clearly(alice, agreement, gateway_b):
    response = push(alice)
    assert response.status_code == 400
    assert "RAA has no gateway it can retrieve from" in str(response.json()["source_trust"])
    assert not Transfer.objects.exists()


def test_a_source_that_retrieves_by_c_move_is_accepted(alice, agreement, gateway_a, gateway_b):
    response = push(alice)  # gateway_a retrieves by C-MOVE (the default): through the portal's receiver
    assert response.status_code == 201, response.json()
    assert Transfer.objects.get().source_gateway == gateway_a


def test_members_of_both_trusts_see_it_and_an_outsider_gets_404(transfer, alice, bob, carol):
    assert api_as(alice).get(f"{URL}{transfer.pk}/").status_code == 200
    assert api_as(bob).get(f"{URL}{transfer.pk}/").status_code == 200
    assert api_as(carol).get(f"{URL}{transfer.pk}/").status_code == 404
    assert api_as(carol).get(URL).json()["results"] == []
    assert api_as(carol).post(f"{URL}{transfer.pk}/cancel/").status_code == 404


def test_direction_and_status_filter_the_list(transfer, alice, bob):
    ids = lambda user, query: [t["id"] for t in api_as(user).get(URL + query).json()["results"]]  # noqa: E731
    assert ids(alice, "?direction=outgoing") == [transfer.pk]
    assert ids(alice, "?direction=incoming") == []
    assert ids(bob, "?direction=incoming") == [transfer.pk]
    assert ids(bob, "?status=queued") == [transfer.pk]
    assert ids(bob, "?status=completed") == []


def test_progress_counts_the_ledger(transfer, alice):
    TransferInstance.objects.create(
        transfer=transfer, sop_instance_uid="1.2.3.1", study_instance_uid=STUDY, state=InstanceState.STORED, size=100
    )
    TransferInstance.objects.create(
        transfer=transfer, sop_instance_uid="1.2.3.2", study_instance_uid=STUDY, state=InstanceState.FAILED
    )
    TransferInstance.objects.create(transfer=transfer, sop_instance_uid="1.2.3.3", study_instance_uid=STUDY)
    progress = api_as(alice).get(f"{URL}{transfer.pk}/").json()["progress"]
    assert progress == {"instances_total": 3, "instances_done": 1, "instances_failed": 1, "bytes_done": 100}


def test_the_requester_cancels(transfer, alice):
    response = api_as(alice).post(f"{URL}{transfer.pk}/cancel/")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert AuditEvent.objects.filter(event_id="110102", action="U", detail__change="cancelled").exists()


def test_a_clinician_who_did_not_ask_cannot_cancel_but_an_imaging_manager_can(transfer, bob, bea):
    assert api_as(bob).post(f"{URL}{transfer.pk}/cancel/").status_code == 403
    assert api_as(bea).post(f"{URL}{transfer.pk}/cancel/").status_code == 200


def test_a_finished_transfer_cannot_be_cancelled(transfer, alice):
    Transfer.objects.filter(pk=transfer.pk).update(status=Status.COMPLETED)
    response = api_as(alice).post(f"{URL}{transfer.pk}/cancel/")
    assert response.status_code == 400
    assert "already ended" in str(response.json())


def test_retry_resends_only_what_did_not_arrive(transfer, amir, enqueued, django_capture_on_commit_callbacks):
    Transfer.objects.filter(pk=transfer.pk).update(status=Status.COMPLETED_WITH_ERRORS, errors=[{"error": "x"}])
    TransferInstance.objects.create(
        transfer=transfer, sop_instance_uid="1.2.3.1", study_instance_uid=STUDY, state=InstanceState.STORED
    )
    TransferInstance.objects.create(
        transfer=transfer, sop_instance_uid="1.2.3.2", study_instance_uid=STUDY, state=InstanceState.FAILED
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = api_as(amir).post(f"{URL}{transfer.pk}/retry/")

    assert response.status_code == 200
    assert response.json()["status"] == "queued" and response.json()["errors"] == []
    states = dict(transfer.instances.values_list("sop_instance_uid", "state"))
    assert states == {"1.2.3.1": "stored", "1.2.3.2": "pending"}
    assert enqueued == [(transfer.pk, "urgent")]


@pytest.mark.parametrize("withdrawn", [{"active": False}, {"a_to_b": False}])
def test_no_retry_once_the_agreement_no_longer_allows_it(transfer, agreement, amir, enqueued, withdrawn):
    Transfer.objects.filter(pk=transfer.pk).update(status=Status.FAILED)
    SharingAgreement.objects.filter(pk=agreement.pk).update(**withdrawn)

    response = api_as(amir).post(f"{URL}{transfer.pk}/retry/")

    assert response.status_code == 400 and "No active sharing agreement" in str(response.json())
    assert Transfer.objects.get(pk=transfer.pk).status == Status.FAILED and enqueued == []


def test_a_running_transfer_cannot_be_retried(transfer, alice):
    assert api_as(alice).post(f"{URL}{transfer.pk}/retry/").status_code == 400


def test_two_studies_in_one_push(alice, agreement, cget_gateway_a, gateway_b):
    response = push(alice, study_instance_uids=[STUDY, OTHER_STUDY, STUDY])
    assert response.status_code == 201
    assert response.json()["study_instance_uids"] == [STUDY, OTHER_STUDY]


def test_a_regional_administrator_sees_only_transfers_of_trusts_they_belong_to(transfer, rita, trust_c):
    Membership.objects.filter(user=rita).update(trust=trust_c)
    assert api_as(rita).get(f"{URL}{transfer.pk}/").status_code == 404
