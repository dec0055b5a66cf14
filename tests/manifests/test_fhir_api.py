"""The FHIR API over exchanged studies: search and read, scoped by trust, answers valid FHIR R4, audited."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.binary import Binary
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.endpoint import Endpoint
from fhir.resources.R4B.imagingstudy import ImagingStudy
from fhir.resources.R4B.operationoutcome import OperationOutcome
from pydicom import dcmread
from pydicom.filebase import DicomBytesIO

from audit.codes import EventID, LocalEventType
from audit.models import AuditEvent
from dicomkit.kos import KOS_SOP_CLASS, referenced_instances
from tests.helpers import api_as

from .conftest import NHS

pytestmark = pytest.mark.django_db

BY_NHS = f"/fhir/ImagingStudy?patient.identifier=https://fhir.nhs.uk/Id/nhs-number|{NHS}"


@pytest.fixture
def manifest(exchange, mr_study):
    return exchange(mr_study)


def fhir_get(user, url: str, **headers: str):
    return api_as(user, token=True).get(url, **headers)


# Required bindings fhir.resources does not check (it checks structure, cardinality and types).
STUDY_STATUS = {"registered", "available", "cancelled", "entered-in-error", "unknown"}
ENDPOINT_STATUS = {"active", "suspended", "error", "off", "entered-in-error", "test"}


def valid_bundle(response) -> Bundle:
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/fhir+json")
    bundle = Bundle.model_validate_json(response.content)
    for entry in bundle.entry or []:
        study = ImagingStudy.model_validate(entry.resource.model_dump())
        assert study.status in STUDY_STATUS
        assert all(Endpoint.model_validate(c.model_dump()).status in ENDPOINT_STATUS for c in study.contained)
        assert entry.search.mode == "match"
    return bundle


def valid_outcome(response, status: int) -> OperationOutcome:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/fhir+json")
    return OperationOutcome.model_validate_json(response.content)


def test_a_search_by_nhs_number_returns_valid_imaging_studies_to_the_holder(manifest, bob, mr_study):
    bundle = valid_bundle(fhir_get(bob, BY_NHS))

    assert bundle.type == "searchset" and bundle.total == 1
    study = ImagingStudy.model_validate(bundle.entry[0].resource.model_dump())
    assert study.identifier[0].system == "urn:dicom:uid"
    assert study.identifier[0].value == f"urn:oid:{manifest.study_instance_uid}"
    assert study.subject.identifier.value == NHS
    assert study.numberOfInstances == len(mr_study) and study.numberOfSeries == 3
    uids = {i.uid for s in study.series for i in s.instance}
    assert uids == {dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in mr_study}
    assert {s.modality.code for s in study.series} == {"MR"}


def test_the_endpoint_is_the_holders_dicomweb_root(manifest, bob, settings):
    body = fhir_get(bob, BY_NHS).json()["entry"][0]["resource"]

    (endpoint,) = body["contained"]
    assert body["endpoint"] == [{"reference": "#dicomweb"}]
    assert endpoint["connectionType"]["code"] == "dicom-wado-rs"
    assert endpoint["address"] == f"{settings.SITE_URL}/dicomweb/trusts/RBB"
    assert endpoint["managingOrganization"]["identifier"]["value"] == "RBB"


def test_the_sending_trust_sees_it_too(manifest, alice):
    assert valid_bundle(fhir_get(alice, BY_NHS)).total == 1


def test_another_trusts_token_gets_an_empty_bundle(manifest, carol):
    bundle = valid_bundle(fhir_get(carol, BY_NHS))
    assert bundle.total == 0 and not bundle.entry
    by_uid = f"/fhir/ImagingStudy?identifier=urn:dicom:uid|{manifest.study_instance_uid}"
    assert valid_bundle(fhir_get(carol, by_uid)).total == 0


def test_another_trusts_token_cannot_read_it_by_id(manifest, carol):
    outcome = valid_outcome(fhir_get(carol, f"/fhir/ImagingStudy/{manifest.pk}"), 404)
    assert outcome.issue[0].code == "not-found"
    valid_outcome(fhir_get(carol, f"/fhir/Binary/{manifest.pk}"), 404)


def test_an_ig_officer_of_the_holder_sees_no_images(manifest, trust_b):
    from accounts.roles import Role
    from tests.helpers import grant, make_user

    iggy = grant(make_user("iggy@b.example"), trust_b, Role.IG_OFFICER)
    assert valid_bundle(fhir_get(iggy, BY_NHS)).total == 0


@pytest.mark.parametrize("uid", ["{uid}", "urn:oid:{uid}"], ids=["bare UID", "urn:oid"])
def test_a_search_by_study_uid_finds_it(manifest, bob, uid):
    url = "/fhir/ImagingStudy?identifier=urn:dicom:uid|" + uid.format(uid=manifest.study_instance_uid)
    bundle = valid_bundle(fhir_get(bob, url))
    assert [e.resource.id for e in bundle.entry] == [str(manifest.pk)]


@pytest.mark.parametrize("fmt", ["json", "application/fhir+json", "application/fhir%2Bjson"])
def test_the_json_formats_are_accepted(manifest, bob, fmt):
    assert valid_bundle(fhir_get(bob, f"{BY_NHS}&_format={fmt}")).total == 1


def test_a_read_by_id_returns_the_imaging_study(manifest, bob):
    response = fhir_get(bob, f"/fhir/ImagingStudy/{manifest.pk}")
    assert response.status_code == 200
    assert ImagingStudy.model_validate_json(response.content).id == str(manifest.pk)


@pytest.mark.parametrize(
    "query",
    [
        "name=Jones",
        "patient.identifier:exact=9434765919",
        "patient=Patient/1",
        "identifier=urn:dicom:uid|1.2.3&_sort=date",
    ],
)
def test_unknown_search_parameters_are_a_400_operation_outcome(manifest, bob, query):
    outcome = valid_outcome(fhir_get(bob, f"/fhir/ImagingStudy?{query}"), 400)
    assert outcome.issue[0].severity == "error" and "Unknown search parameter" in outcome.issue[0].diagnostics


@pytest.mark.parametrize(
    "query",
    [
        "",
        "patient.identifier=1234567890",
        "patient.identifier=http://example.org/mrn|9434765919",
        "identifier=urn:dicom:uid|not-a-uid",
        "identifier=1.2.3&identifier=1.2.4",
        "identifier=1.2.3&_count=-1",
        "identifier=1.2.3&_format=xml",
    ],
)
def test_bad_searches_are_a_400_operation_outcome(manifest, bob, query):
    outcome = valid_outcome(fhir_get(bob, f"/fhir/ImagingStudy?{query}"), 400)
    assert outcome.issue[0].diagnostics


def test_without_a_token_the_answer_is_a_401_operation_outcome(manifest, bob):
    from rest_framework.test import APIClient

    response = APIClient().get(BY_NHS)
    valid_outcome(response, 401)
    assert response["WWW-Authenticate"].startswith("Token")
    # A signed-in browser session is not a system of the region: the API takes tokens only.
    valid_outcome(api_as(bob).get(BY_NHS), 401)


def test_other_fhir_resources_are_a_404_operation_outcome(manifest, bob):
    valid_outcome(fhir_get(bob, "/fhir/Patient?identifier=9434765919"), 404)


def test_the_kos_manifest_is_served_as_dicom_and_as_a_fhir_binary(manifest, bob, mr_study):
    raw = fhir_get(bob, f"/fhir/Binary/{manifest.pk}", HTTP_ACCEPT="application/dicom")
    assert raw.status_code == 200 and raw["Content-Type"] == "application/dicom"
    kos = dcmread(DicomBytesIO(raw.content))
    assert kos.SOPClassUID == KOS_SOP_CLASS
    assert set(referenced_instances(kos)) == {dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in mr_study}

    response = fhir_get(bob, f"/fhir/Binary/{manifest.pk}")
    assert Binary.model_validate_json(response.content).contentType == "application/dicom"


def test_every_read_is_audited_with_the_nhs_number(manifest, bob):
    fhir_get(bob, BY_NHS)
    fhir_get(bob, f"/fhir/ImagingStudy/{manifest.pk}")

    disclosed = AuditEvent.objects.filter(event_type=LocalEventType.MANIFEST_DISCLOSED).order_by("seq")
    assert [(e.event_id, e.action, e.nhs_number, e.trust, e.peer_trust) for e in disclosed] == [
        (EventID.EXPORT, "R", NHS, "RBB", "RAA")
    ] * 2
    assert all(e.actor_label == "bob@b.example" and e.actor_ref for e in disclosed)  # the token's fingerprint
    assert [e.detail["as"] for e in disclosed] == ["search", "read"]
    (search,) = AuditEvent.objects.filter(event_type=LocalEventType.FHIR_SEARCH)
    assert search.event_id == EventID.QUERY and search.nhs_number == NHS
    assert search.detail["query"] == {"nhs_number": NHS} and search.detail["returned"] == 1


def test_an_empty_search_is_audited_too(manifest, carol):
    fhir_get(carol, BY_NHS)
    (search,) = AuditEvent.objects.filter(event_type=LocalEventType.FHIR_SEARCH)
    assert search.nhs_number == NHS and search.detail["returned"] == 0
    assert not AuditEvent.objects.filter(event_type=LocalEventType.MANIFEST_DISCLOSED).exists()


def test_pages_follow_count_and_link_to_the_next(exchange, mr_study, bob):
    first, second = exchange(mr_study), exchange(mr_study)
    bundle = valid_bundle(fhir_get(bob, f"{BY_NHS}&_count=1"))
    assert bundle.total == 2 and [e.resource.id for e in bundle.entry] == [str(second.pk)]
    (next_link,) = [link.url for link in bundle.link if link.relation == "next"]
    following = valid_bundle(fhir_get(bob, next_link.split("/fhir", 1)[1].join(["/fhir", ""])))
    assert [e.resource.id for e in following.entry] == [str(first.pk)]


def test_the_capability_statement_says_what_is_served_without_a_token(db):
    from rest_framework.test import APIClient

    response = APIClient().get("/fhir/metadata")
    statement = CapabilityStatement.model_validate_json(response.content)
    assert statement.fhirVersion == "4.0.1"
    assert {r.type for r in statement.rest[0].resource} == {"ImagingStudy", "Binary"}


def test_the_ig_officers_of_both_trusts_see_the_disclosure_in_the_patient_access_report(manifest, bob, ada, trust_b):
    from accounts.roles import Role
    from auditconsole.selectors import patient_events
    from tests.helpers import grant, make_user

    fhir_get(bob, f"/fhir/ImagingStudy/{manifest.pk}")

    iggy = grant(make_user("iggy@b.example"), trust_b, Role.IG_OFFICER)
    for officer in (ada, iggy):  # the sender's and the holder's
        kinds = set(patient_events(officer, NHS).values_list("event_type", flat=True))
        assert LocalEventType.MANIFEST_DISCLOSED in kinds, officer


def test_the_api_is_read_only(manifest, bob):
    client = api_as(bob, token=True)
    for method in (client.post, client.put, client.delete):
        outcome = valid_outcome(method(f"/fhir/ImagingStudy/{manifest.pk}"), 405)
        assert outcome.issue[0].code == "not-supported"
