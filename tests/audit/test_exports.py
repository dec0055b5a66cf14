"""The three export formats: CSV, FHIR R4 AuditEvent (a Bundle), DICOM PS3.15 A.5 audit messages."""

from __future__ import annotations

import base64
import csv
import io
import json
from pathlib import Path
from xml.etree import ElementTree as ET

import jsonschema
import pytest

from audit import catalogue, exports
from audit.codes import Action, EventID, EventType
from audit.context import SYSTEM, Actor
from audit.models import AuditEvent
from audit.services import record_event
from tests.audit.conftest import PATIENT, STUDY

pytestmark = pytest.mark.django_db

SCHEMA = json.loads((Path(__file__).parent / "fhir_r4_auditevent_bundle.schema.json").read_text())
DCM = "http://dicom.nema.org/resources/ontology/DCM"
ALICE = Actor(type="user", user_id=None, label="alice@a.example", client_ip="10.0.0.7", user_agent="WardPC")


@pytest.fixture
def one_of_each() -> list[AuditEvent]:
    """One event for every event ID of SPEC section 4, with patients, studies, reasons and a failure."""
    return [
        record_event(event_id=EventID.APPLICATION_ACTIVITY, action=Action.EXECUTE, event_type="110120"),
        catalogue.AUDIT_LOG_READ.record(actor=ALICE, detail={"filters": {"nhs_number": PATIENT}}),
        catalogue.PUSH_REQUESTED.record(
            actor=ALICE, trust="RAA", peer_trust="RBB", nhs_number=PATIENT, study_uids=[STUDY], reason="MDT"
        ),
        catalogue.STUDY_VIEWED.record(
            actor=ALICE, trust="RAA", nhs_number=PATIENT, patient_id="A123", study_uids=[STUDY]
        ),
        catalogue.TRANSFER_COMPLETED.record(
            actor=SYSTEM, trust="RAA", peer_trust="RBB", study_uids=[STUDY], outcome=4, detail={"error": "1 failed"}
        ),
        catalogue.SHARE_LINK_CREATED.record(actor=ALICE, trust="RAA", study_uids=[STUDY], reason="second opinion"),
        catalogue.IMPORTED.record(
            actor=SYSTEM, trust="RBB", study_uids=[STUDY], patient_id="B9", detail={"issuer": "RBB_MRN"}
        ),
        catalogue.STUDY_SEARCH.record(
            actor=ALICE, trust="RAA", detail={"query": {"PatientID": "A123", "Modality": "CT"}}
        ),
        catalogue.EMERGENCY_AUTO_APPROVAL.record(
            actor=SYSTEM, trust="RAA", peer_trust="RBB", nhs_number=PATIENT, reason="trauma: suspected bleed"
        ),
        catalogue.SIGN_IN.record(actor=ALICE, outcome=4, detail={"step": "password"}),
        catalogue.IDENTITY_CORRECTED.record(
            actor=ALICE, trust="RAA", nhs_number=PATIENT, study_uids=[STUDY], detail={"corrected": ["patient_name"]}
        ),
    ]


def test_the_fixture_covers_every_event_id_of_the_spec(one_of_each):
    assert {e.event_id for e in one_of_each} == set(EventID.values)


# --- FHIR ---------------------------------------------------------------------------------------------


def bundle(events) -> dict:
    return json.loads("".join(exports.fhir_bundle_chunks(events)))


def test_the_fhir_export_is_a_structurally_valid_bundle_of_audit_events(one_of_each):
    document = bundle(one_of_each)

    jsonschema.validate(document, SCHEMA)
    assert len(document["entry"]) == len(one_of_each)
    for entry in document["entry"]:
        resource = entry["resource"]
        assert resource["type"]["system"] == DCM
        assert resource["type"]["code"] in EventID.values
        assert all(agent["requestor"] in (True, False) for agent in resource["agent"])
        for entity in resource.get("entity", []):
            assert not ("name" in entity and "query" in entity)  # FHIR invariant sev-1


def test_fhir_names_the_patient_studies_trusts_and_reason(one_of_each):
    push = bundle(one_of_each)["entry"][2]["resource"]

    identifiers = {(e["what"]["identifier"]["system"], e["what"]["identifier"]["value"]) for e in push["entity"]}
    assert ("https://fhir.nhs.uk/Id/nhs-number", PATIENT) in identifiers
    assert ("urn:dicom:uid", f"urn:oid:{STUDY}") in identifiers
    assert ("https://fhir.nhs.uk/Id/ods-organization-code", "RBB") in identifiers
    assert push["purposeOfEvent"] == [{"text": "MDT"}]
    assert push["subtype"][0]["code"] == "IEP101"
    assert push["agent"][0]["network"] == {"address": "10.0.0.7", "type": "2"}


def test_fhir_marks_emergency_access_as_emergency_treatment(one_of_each):
    emergency = bundle(one_of_each)["entry"][8]["resource"]

    assert emergency["type"]["code"] == "110113"
    assert emergency["subtype"] == [{"system": DCM, "code": "110127", "display": "Emergency Override Started"}]
    assert emergency["purposeOfEvent"][0]["coding"][0]["code"] == "ETREAT"
    assert emergency["purposeOfEvent"][0]["text"] == "trauma: suspected bleed"


def test_fhir_carries_failures_and_queries(one_of_each):
    resources = [entry["resource"] for entry in bundle(one_of_each)["entry"]]
    transfer, search = resources[4], resources[7]

    assert (transfer["outcome"], transfer["outcomeDesc"]) == ("4", "1 failed")
    (query,) = [e for e in search["entity"] if e["role"]["code"] == "24"]
    assert json.loads(base64.b64decode(query["query"])) == {"Modality": "CT", "PatientID": "A123"}


def test_an_empty_fhir_export_is_still_a_valid_bundle():
    document = bundle([])
    jsonschema.validate(document, SCHEMA)
    assert document["entry"] == []


# --- DICOM --------------------------------------------------------------------------------------------


def messages(events) -> list[ET.Element]:
    root = ET.fromstring("".join(exports.dicom_xml_chunks(events)))  # noqa: S314  (our own output)
    assert root.tag == "AuditMessages"
    return list(root)


def test_the_dicom_export_parses_and_carries_every_event_id_of_the_spec(one_of_each):
    found = messages(one_of_each)

    assert [m.tag for m in found] == ["AuditMessage"] * len(one_of_each)
    codes = {m.find("EventIdentification/EventID").get("csd-code") for m in found}
    assert codes == set(EventID.values)
    for message in found:
        event_id = message.find("EventIdentification/EventID")
        assert event_id.get("codeSystemName") == "DCM"
        assert event_id.get("originalText")


def test_dicom_messages_follow_the_annex_a5_structure(one_of_each):
    for message, event in zip(messages(one_of_each), one_of_each, strict=True):
        children = [child.tag for child in message]
        # EventIdentification, then ActiveParticipant(s), then AuditSourceIdentification, then objects.
        assert children[0] == "EventIdentification"
        source_at = children.index("AuditSourceIdentification")
        assert set(children[1:source_at]) == {"ActiveParticipant"}
        assert set(children[source_at + 1 :]) <= {"ParticipantObjectIdentification"}
        identification = message.find("EventIdentification")
        assert identification.get("EventActionCode") == event.action
        assert identification.get("EventOutcomeIndicator") == str(event.outcome)
        assert identification.get("EventDateTime").endswith("Z")


def test_dicom_participant_objects_use_the_standard_id_type_codes(one_of_each):
    view = messages(one_of_each)[3]

    objects = {
        (o.get("ParticipantObjectID"), o.find("ParticipantObjectIDTypeCode").get("csd-code"))
        for o in view.findall("ParticipantObjectIdentification")
    }
    assert (PATIENT, "2") in objects
    assert ("A123", "2") in objects
    assert (STUDY, "110180") in objects
    patient = next(
        o for o in view.findall("ParticipantObjectIdentification") if o.get("ParticipantObjectID") == PATIENT
    )
    assert (patient.get("ParticipantObjectTypeCode"), patient.get("ParticipantObjectTypeCodeRole")) == ("1", "1")
    issuer = patient.find("ParticipantObjectDetail")
    assert base64.b64decode(issuer.get("value")).decode() == "NHS"


def test_dicom_queries_name_the_find_sop_class(one_of_each):
    search = messages(one_of_each)[7]

    query = next(
        o
        for o in search.findall("ParticipantObjectIdentification")
        if o.find("ParticipantObjectIDTypeCode").get("csd-code") == "110181"
    )
    assert query.get("ParticipantObjectID") == "1.2.840.10008.5.1.4.1.2.2.1"
    assert json.loads(base64.b64decode(query.find("ParticipantObjectQuery").text))["Modality"] == "CT"


def test_dicom_marks_emergency_access(one_of_each):
    emergency = messages(one_of_each)[8].find("EventIdentification")

    assert emergency.find("EventTypeCode").get("csd-code") == EventType.EMERGENCY_OVERRIDE_STARTED
    assert emergency.find("PurposeOfUse").get("csd-code") == "ETREAT"


# --- CSV ----------------------------------------------------------------------------------------------


def test_the_csv_export_has_a_header_and_one_row_per_event(one_of_each):
    rows = list(csv.DictReader(io.StringIO("".join(exports.csv_chunks(one_of_each)))))

    assert len(rows) == len(one_of_each)
    push = rows[2]
    assert push["event_id"] == "110102"
    assert push["nhs_number"] == PATIENT
    assert push["study_instance_uids"] == STUDY
    assert push["trust"] == "RAA" and push["peer_trust"] == "RBB"
    assert push["reason"] == "MDT"
    assert len(push["hash"]) == 64


def test_csv_cells_a_spreadsheet_would_run_are_neutralised():
    record_event(event_id=EventID.QUERY, action=Action.EXECUTE, reason='=HYPERLINK("http://evil")', actor=SYSTEM)

    (row,) = list(csv.DictReader(io.StringIO("".join(exports.csv_chunks(AuditEvent.objects.all())))))

    assert row["reason"].startswith("'=")
