"""The register of copies: noted as the engine sends, made copies by the transfer's end, answered by study
and by patient (for a patient exchanged to two trusts), to the right people only."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from copies.models import Copy, CopyState
from copies.selectors import holdings
from tests.helpers import api_as, signed_in
from transfers import completion

from .conftest import stored_transfer

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiving(trust_b, trust_c):
    for trust in (trust_b, trust_c):
        trust.reconcile_patient_id = False  # filed as sent; the accession number is prefixed by the source
        trust.prefix_accession = True
        trust.save()
    return trust_b, trust_c


@pytest.fixture
def exchanged_to_two(
    receiving, trust_a, gateway_a, gateway_b, gateway_c, study_files, alice, django_capture_on_commit_callbacks
):
    trust_b, trust_c = receiving
    transfers = []
    for destination, gateway in ((trust_b, gateway_b), (trust_c, gateway_c)):
        transfer = stored_transfer(
            source=trust_a,
            destination=destination,
            source_gateway=gateway_a,
            destination_gateway=gateway,
            paths=study_files,
            by=alice,
        )
        transfer.lease_owner = "test"
        transfer.save()
        with django_capture_on_commit_callbacks(execute=True):
            assert completion.transfer_complete(transfer.pk, owner="test") == "completed"
        transfers.append(transfer)
    return transfers


def test_a_copy_is_only_noted_until_the_transfer_ends(receiving, trust_a, gateway_a, gateway_b, study_files, alice):
    stored_transfer(
        source=trust_a,
        destination=receiving[0],
        source_gateway=gateway_a,
        destination_gateway=gateway_b,
        paths=study_files,
        by=alice,
    )
    assert set(Copy.objects.values_list("state", flat=True)) == {CopyState.SENDING}


def test_the_register_answers_for_a_patient_exchanged_to_two_trusts(exchanged_to_two, patient, ada):
    response = api_as(ada).get("/api/v1/copies/", {"nhs_number": patient.nhs_number})
    assert response.status_code == 200, response.json()
    results = response.json()["results"]
    assert {r["holder"] for r in results} == {"RBB", "RCC"}
    for row in results:
        assert row["instances"] == 3
        assert row["patient_id"] == "RAA1234567" and row["issuer"] == "RAA_MRN"
        assert row["accession_number"] == "RAAACC2201"
        assert row["state"] == "held" and row["since"]
        assert row["source"] == "RAA" and row["via"] == ["push"]
    assert sorted(t for r in results for t in r["transfers"]) == sorted(t.pk for t in exchanged_to_two)
    assert AuditEvent.objects.filter(event_type="IEP185", nhs_number=patient.nhs_number).count() == 1


def test_the_sources_imaging_manager_sees_where_copies_of_a_study_are(exchanged_to_two, study_files, amir):
    study_uid = study_files[0].parent.name
    page = signed_in(amir).get("/copies/", {"study": study_uid})
    assert page.status_code == 200
    text = page.content.decode()
    assert "Beta District General (RBB)" in text and "Gamma Community Hospital (RCC)" in text
    assert "RAAACC2201" in text and "Reject or correct this study (RAA)" in text


def test_a_holder_sees_only_its_own_copies(exchanged_to_two, patient, cyd):
    found = holdings(cyd, nhs_number=patient.nhs_number)
    assert {h.holder for h in found} == {"RCC"}


def test_an_outsider_reads_nothing(exchanged_to_two, patient, dee, bob):
    answer = api_as(dee).get("/api/v1/copies/", {"nhs_number": patient.nhs_number})
    assert answer.status_code == 200 and answer.json()["count"] == 0  # another trust's manager: none of it
    assert api_as(bob).get("/api/v1/copies/", {"nhs_number": patient.nhs_number}).status_code == 403  # a clinician


def test_the_ig_officers_patient_report_lists_copies_across_the_region(exchanged_to_two, patient, ada):
    page = signed_in(ada).get("/audit/patients/", {"nhs_number": patient.nhs_number})
    assert page.status_code == 200
    text = page.content.decode()
    assert "Copies of this patient&#x27;s images across the region" in text or "Copies of this patient's images" in text
    assert 'data-holder="RBB"' in text and 'data-holder="RCC"' in text


def test_a_query_naming_nothing_is_refused(exchanged_to_two, amir):
    response = api_as(amir).get("/api/v1/copies/")
    assert response.status_code == 400
