"""The study search page and the study page, for people at the desk."""

from __future__ import annotations

from audit.models import AuditEvent
from tests.helpers import signed_in

from .conftest import NHS_SIOBHAN, RHYS_MRN


def test_the_search_page_starts_empty_and_queries_nothing(alice, sim_gateway):
    response = signed_in(alice).get("/trusts/RAA/studies/")
    assert response.status_code == 200
    assert "NHS number" in response.content.decode()
    assert not AuditEvent.objects.filter(event_id="110112").exists()


def test_results_show_the_nhs_number_spaced_apart_from_the_local_id(alice, sim_gateway, studies):
    page = signed_in(alice).get("/trusts/RAA/studies/", {"patient_name": "*"}).content.decode()
    assert "999 000 0018" in page
    assert "999 000 0026" in page
    assert RHYS_MRN in page
    assert "Ó SÚILLEABHÁIN, Siobhán" in page
    assert "14 Feb 1980" in page
    assert f"/trusts/RAA/studies/{studies.mr_uid}/" in page
    assert AuditEvent.objects.get(event_id="110112").detail["query"] == {"patient_name": "*"}


def test_a_bad_check_digit_is_a_form_error(alice, sim_gateway):
    response = signed_in(alice).get("/trusts/RAA/studies/", {"nhs_number": "943 476 5910"})
    assert response.status_code == 400
    assert "check digit is wrong" in response.content.decode()


def test_an_empty_search_asks_for_a_criterion(alice, sim_gateway):
    response = signed_in(alice).get("/trusts/RAA/studies/", {"search": "1"})
    assert response.status_code == 400
    assert "at least one search criterion" in response.content.decode()


def test_a_gateway_that_is_down_is_a_message_not_a_500(alice, dead_gateway):
    response = signed_in(alice).get("/trusts/RAA/studies/", {"nhs_number": NHS_SIOBHAN})
    assert response.status_code == 503
    assert "could not be searched just now" in response.content.decode()


def test_the_study_page_lists_its_series(alice, sim_gateway, studies):
    page = signed_in(alice).get(f"/trusts/RAA/studies/{studies.mr_uid}/").content.decode()
    assert "T1 axial" in page and "FLAIR axial" in page
    assert AuditEvent.objects.filter(event_id="110103", study_uids=[studies.mr_uid]).exists()


def test_other_trusts_cannot_open_the_pages(bob, sim_gateway, studies):
    assert signed_in(bob).get("/trusts/RAA/studies/", {"nhs_number": NHS_SIOBHAN}).status_code == 404
    assert signed_in(bob).get(f"/trusts/RAA/studies/{studies.mr_uid}/").status_code == 404


def test_the_studies_link_goes_to_the_users_trust(alice, bob, sim_gateway):
    assert signed_in(alice).get("/studies/").url == "/trusts/RAA/studies/"
    page = signed_in(alice).get("/trusts/RAA/studies/").content.decode()
    assert 'href="/studies/"' in page


def test_the_studies_link_explains_when_no_role_allows_searching(ada):
    page = signed_in(ada).get("/studies/").content.decode()
    assert "cannot" in page or "do not include" in page
