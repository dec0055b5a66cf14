"""GET /api/v1/trusts/{ods}/studies/ and .../{study_uid}/ against a real simulated PACS and Orthanc."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from tests.helpers import api_as

from .conftest import NHS_RHYS, NHS_SIOBHAN, RHYS_MRN

STUDY_FIELDS = {
    "study_instance_uid",
    "patient_name",
    "patient_id",
    "nhs_number",
    "birth_date",
    "sex",
    "study_date",
    "modalities",
    "description",
    "accession_number",
    "series_count",
    "instance_count",
}


def search(user, ods="RAA", **params):
    return api_as(user).get(f"/api/v1/trusts/{ods}/studies/", params)


def test_it_finds_a_study_by_nhs_number_typed_with_spaces(alice, sim_gateway, studies):
    response = search(alice, nhs_number="999 000 0018")
    assert response.status_code == 200, response.json()
    (study,) = response.json()["results"]
    assert set(study) == STUDY_FIELDS
    assert study["study_instance_uid"] == studies.ct_uid
    assert study["nhs_number"] == NHS_SIOBHAN
    assert study["patient_name"] == "Ó Súilleabháin^Siobhán"
    assert study["birth_date"] == "1980-02-14"
    assert study["study_date"] == "2024-01-10"
    assert study["modalities"] == ["CT"]
    assert (study["series_count"], study["instance_count"]) == (1, 4)


def test_it_finds_an_nhs_number_held_among_other_patient_ids(alice, sim_gateway, studies):
    (study,) = search(alice, nhs_number=NHS_RHYS).json()["results"]
    assert study["study_instance_uid"] == studies.mr_uid
    assert study["nhs_number"] == NHS_RHYS
    assert study["patient_id"] == RHYS_MRN  # the local MRN, kept apart from the NHS number
    assert study["accession_number"] == "ACC0001"


def test_it_searches_by_name_wildcard_and_modality(amir, sim_gateway, studies):
    results = search(amir, patient_name="Dav*", modality="mr").json()["results"]
    assert [s["study_instance_uid"] for s in results] == [studies.mr_uid]


def test_it_searches_by_study_date_range(alice, sim_gateway, studies):
    results = search(alice, study_date_from="2024-01-01", study_date_to="2024-12-31").json()["results"]
    assert [s["study_instance_uid"] for s in results] == [studies.ct_uid]


def test_it_rejects_a_wrong_check_digit(alice, sim_gateway):
    response = search(alice, nhs_number="999 000 0019")
    assert response.status_code == 400
    assert "check digit" in response.json()["nhs_number"][0]
    assert not AuditEvent.objects.filter(event_id="110112").exists()


def test_it_requires_a_criterion(alice, sim_gateway):
    response = search(alice)
    assert response.status_code == 400
    assert "at least one" in response.json()["detail"]


def test_it_rejects_a_backwards_date_range(alice, sim_gateway):
    response = search(alice, study_date_from="2024-02-01", study_date_to="2024-01-01")
    assert response.status_code == 400
    assert "study_date_to" in response.json()


def test_it_records_every_query(alice, sim_gateway, studies):
    search(alice, nhs_number="999 000 0018", modality="CT")
    event = AuditEvent.objects.get(event_id="110112")
    assert (event.action, event.outcome, event.trust, event.nhs_number) == ("E", 0, "RAA", NHS_SIOBHAN)
    assert event.actor_user_id == alice.pk
    assert event.detail["query"] == {"nhs_number": NHS_SIOBHAN, "modality": "CT"}
    assert event.detail["results"] == 1
    assert event.study_uids == [studies.ct_uid]


def test_other_trusts_staff_get_404(bob, sim_gateway):
    assert search(bob, nhs_number=NHS_SIOBHAN).status_code == 404
    assert not AuditEvent.objects.filter(event_id="110112").exists()


def test_a_member_without_a_clinical_role_gets_403(ada, sim_gateway):
    assert search(ada, nhs_number=NHS_SIOBHAN).status_code == 403


def test_regional_admin_role_alone_does_not_open_patients_images(rita, sim_gateway):
    assert search(rita, nhs_number=NHS_SIOBHAN).status_code == 403


def test_anonymous_gets_401_or_403(client, sim_gateway):
    assert client.get("/api/v1/trusts/RAA/studies/", {"nhs_number": NHS_SIOBHAN}).status_code in (401, 403)


def test_a_gateway_that_is_down_gives_503_with_a_reason(alice, dead_gateway):
    response = search(alice, nhs_number=NHS_SIOBHAN)
    assert response.status_code == 503
    assert "could not be searched" in response.json()["detail"]
    event = AuditEvent.objects.get(event_id="110112")
    assert event.outcome == 8
    assert event.detail["error"]


def test_a_trust_without_a_gateway_gives_503(alice, trust_a):
    response = search(alice, nhs_number=NHS_SIOBHAN)
    assert response.status_code == 503
    assert "no DICOM gateway" in response.json()["detail"]


def test_the_detail_lists_series_with_instance_counts(alice, sim_gateway, studies):
    response = api_as(alice).get(f"/api/v1/trusts/RAA/studies/{studies.mr_uid}/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == STUDY_FIELDS | {"series"}
    assert [s["instance_count"] for s in body["series"]] == [2, 2, 1]
    assert {s["modality"] for s in body["series"]} == {"MR"}
    event = AuditEvent.objects.get(event_id="110103")
    assert (event.action, event.trust, event.nhs_number, event.study_uids) == ("R", "RAA", NHS_RHYS, [studies.mr_uid])


def test_an_unknown_study_is_404(alice, sim_gateway):
    assert api_as(alice).get("/api/v1/trusts/RAA/studies/1.2.3.4.5/").status_code == 404
    assert api_as(alice).get("/api/v1/trusts/RAA/studies/not-a-uid/").status_code == 404


def test_the_detail_is_404_for_other_trusts(bob, sim_gateway, studies):
    assert api_as(bob).get(f"/api/v1/trusts/RAA/studies/{studies.mr_uid}/").status_code == 404


@pytest.mark.interop
def test_it_searches_a_dicomweb_gateway_with_qido_rs(alice, orthanc_gateway, studies):
    response = search(alice, nhs_number=NHS_RHYS)
    assert response.status_code == 200, response.json()
    (study,) = response.json()["results"]
    assert study["study_instance_uid"] == studies.mr_uid
    assert study["instance_count"] == 5
