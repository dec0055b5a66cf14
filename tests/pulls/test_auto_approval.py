"""Auto-approval against a real Orthanc as trust A's PACS: an urgent or trauma request from a major trauma
centre, under an agreement that allows it, is approved at once when exactly one patient matches on NHS
number and birth date, and recorded as emergency access; otherwise it waits for a person."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from audit.models import AuditEvent
from dicomkit import nhs
from dicomkit.sim.synthetic import SyntheticPatient, make_study
from directory.models import Gateway, SharingAgreement
from pulls.models import PullRequest
from tests.dicom.orthanc import free_port
from tests.helpers import api_as
from tests.transfers.peers import orthanc_gateway
from transfers.models import Transfer

pytestmark = [pytest.mark.interop, pytest.mark.django_db]


@pytest.fixture
def region(pacs_pair, trust_a, trust_b, enqueued):
    trust_b.major_trauma_centre = True
    trust_b.save()
    agreement = SharingAgreement.objects.create(trust_a=trust_a, trust_b=trust_b, auto_approve_urgent=True)
    a, b = pacs_pair
    orthanc_gateway(trust_a, a)
    orthanc_gateway(trust_b, b)
    return agreement


def study_at_a(pacs_pair, tmp_path: Path, seed: int) -> tuple[SyntheticPatient, str]:
    person = SyntheticPatient(
        nhs_number=nhs.synthetic(random.Random(seed)),
        family_name="Khan",
        given_name="Priya",
        birth_date="19750611",
        sex="F",
        local_id=f"RAA{seed:07d}",
        local_issuer="RAA_MRN",
    )
    paths = make_study(tmp_path, modality="CT", n_instances=2, patient=person, seed=seed)
    pacs_pair[0].upload(paths)
    return person, paths[0].parent.name


def ask(bob, person: SyntheticPatient, **overrides):
    body = {
        "source_trust": "RAA",
        "nhs_number": person.nhs_number,
        "family_name": "Khan",
        "given_name": "Priya",
        "birth_date": "1975-06-11",
        "sex": "F",
        "priority": "trauma",
        "reason": "Major trauma: transferred, needs prior imaging now",
        **overrides,
    }
    response = api_as(bob).post("/api/v1/requests/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_a_trauma_request_with_a_unique_match_is_approved_at_once(region, pacs_pair, bob, ada, tmp_path):
    person, study_uid = study_at_a(pacs_pair, tmp_path, 801)

    body = ask(bob, person)

    assert body["status"] == "approved" and body["auto_approved"] is True, body
    assert body["approved_study_uids"] == [study_uid] and body["decided_by"] is None
    transfer = Transfer.objects.get(pk=body["transfer"])
    assert (transfer.source.ods_code, transfer.destination.ods_code, transfer.priority) == ("RAA", "RBB", "trauma")
    emergency = AuditEvent.objects.get(event_id="110113", detail__request=body["id"])
    assert emergency.event_type == "110127" and emergency.reason.startswith("Major trauma")
    assert (emergency.trust, emergency.peer_trust, emergency.nhs_number) == ("RAA", "RBB", person.nhs_number)
    # The IG officer of the source trust finds it in the console's API.
    listed = api_as(ada).get("/api/v1/audit-events/?event_id=110113").json()["results"]
    assert [(e["seq"], e["event_type"]) for e in listed] == [(emergency.seq, "110127")]


def test_a_birth_date_mismatch_waits_for_a_person(region, pacs_pair, bob, tmp_path):
    person, study_uid = study_at_a(pacs_pair, tmp_path, 802)

    body = ask(bob, person, birth_date="1975-06-12")

    assert body["status"] == "pending" and body["auto_approved"] is False
    assert [(c["study_instance_uid"], c["mismatches"]) for c in body["candidates"]] == [(study_uid, ["birth_date"])]
    assert body["transfer"] is None and not Transfer.objects.exists()
    assert not AuditEvent.objects.filter(event_id="110113").exists()


def test_a_name_mismatch_is_flagged_for_the_approver(region, pacs_pair, bob, tmp_path):
    person, _ = study_at_a(pacs_pair, tmp_path, 803)
    body = ask(bob, person, family_name="Kahn", priority="routine")
    assert body["status"] == "pending" and body["candidates"][0]["mismatches"] == ["name"]


def test_a_routine_request_is_never_auto_approved(region, pacs_pair, bob, tmp_path):
    person, _ = study_at_a(pacs_pair, tmp_path, 804)
    assert ask(bob, person, priority="routine")["status"] == "pending"


def test_without_the_agreements_say_so_an_urgent_request_waits(region, pacs_pair, bob, tmp_path):
    region.auto_approve_urgent = False
    region.save()
    person, _ = study_at_a(pacs_pair, tmp_path, 805)
    assert ask(bob, person, priority="urgent")["status"] == "pending"


def test_a_request_from_a_trust_that_is_not_a_trauma_centre_waits(region, pacs_pair, bob, trust_b, tmp_path):
    trust_b.major_trauma_centre = False
    trust_b.save()
    person, _ = study_at_a(pacs_pair, tmp_path, 806)
    body = ask(bob, person)
    assert body["status"] == "pending"
    assert PullRequest.objects.get(pk=body["id"]).candidates  # found, just not approved automatically


def test_two_patients_with_the_same_nhs_number_at_the_source_wait_for_a_person(region, pacs_pair, bob, tmp_path):
    person, _ = study_at_a(pacs_pair, tmp_path / "one", 807)
    duplicate = SyntheticPatient(**{**person.__dict__, "local_id": "RAA9990807"})
    pacs_pair[0].upload(
        make_study(tmp_path / "two", modality="MR", n_instances=3, patient=duplicate, nhs_store="other-ids", seed=808)
    )
    body = ask(bob, person)
    assert len(body["candidates"]) == 2 and body["status"] == "pending"


def test_when_no_transfer_can_be_set_up_an_eligible_request_waits_for_a_person(
    region, pacs_pair, bob, trust_b, tmp_path
):
    Gateway.objects.filter(trust=trust_b).delete()  # nowhere at the requesting trust to send the images to
    person, _ = study_at_a(pacs_pair, tmp_path, 809)
    body = ask(bob, person)
    assert body["status"] == "pending" and body["candidates"]
    assert not Transfer.objects.exists() and not AuditEvent.objects.filter(event_id="110113").exists()


def test_searching_again_after_the_pacs_was_down_finds_the_studies_and_approves_an_eligible_request(
    region, pacs_pair, bob, amir, trust_a, tmp_path
):
    person, study_uid = study_at_a(pacs_pair, tmp_path, 811)
    gateway = Gateway.objects.get(trust=trust_a)
    live_port = gateway.port
    Gateway.objects.filter(pk=gateway.pk).update(port=free_port())  # nothing listens there: A's PACS is "down"
    body = ask(bob, person)
    assert (
        body["status"] == "pending" and not body["candidates"] and "could not be searched" in body["candidates_error"]
    )

    Gateway.objects.filter(pk=gateway.pk).update(port=live_port)
    response = api_as(amir).post(f"/api/v1/requests/{body['id']}/search-again/")

    assert response.status_code == 200, response.json()
    again = response.json()
    assert [c["study_instance_uid"] for c in again["candidates"]] == [study_uid] and not again["candidates_error"]
    assert again["status"] == "approved" and again["auto_approved"] is True  # trauma, unique match: as if just made
    assert api_as(amir).post(f"/api/v1/requests/{body['id']}/search-again/").status_code == 400  # decided now


def test_only_the_requester_or_the_source_approvers_may_search_again(region, pacs_pair, bob, alice, ada, tmp_path):
    person, _ = study_at_a(pacs_pair, tmp_path, 812)
    body = ask(bob, person, priority="routine")
    before = PullRequest.objects.get(pk=body["id"]).candidates

    assert api_as(ada).post(f"/api/v1/requests/{body['id']}/search-again/").status_code == 403  # IG officer at A
    assert api_as(alice).post(f"/api/v1/requests/{body['id']}/search-again/").status_code == 200  # clinician at A
    assert api_as(bob).post(f"/api/v1/requests/{body['id']}/search-again/").status_code == 200  # the requester
    assert PullRequest.objects.get(pk=body["id"]).candidates == before
