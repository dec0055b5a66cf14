"""Audit events out of the portal: CSV for spreadsheets, FHIR R4 AuditEvent, DICOM PS3.15 A.5 audit messages.

Each format is a generator of text chunks, so an export of a year's events streams with flat memory.
The caller records the export itself on the audit trail (audit.catalogue.AUDIT_LOG_EXPORTED).
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree as ET

from django.conf import settings
from django.utils import timezone

from .codes import DCM, DCM_SYSTEM, LOCAL_SCHEME, ActorType, EventID, EventType, display, scheme
from .models import AuditEvent

FORMATS = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "fhir": ("application/fhir+json; charset=utf-8", "json"),
    "dicom": ("application/xml; charset=utf-8", "xml"),
}

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
DICOM_UID_SYSTEM = "urn:dicom:uid"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
ACT_REASON_OID = "2.16.840.1.113883.5.8"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"


def fhir_instant(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def patient_id_system(ods_code: str) -> str:
    """The FHIR identifier system of a trust's local patient IDs (MRNs), in every FHIR resource the portal makes."""
    return f"{settings.SITE_URL}/fhir/Id/patient-id/{ods_code}"


def filename(fmt: str) -> str:
    return f"audit-events-{timezone.now():%Y%m%d-%H%M%S}.{FORMATS[fmt][1]}"


def render(fmt: str, events: Iterable[AuditEvent]) -> Iterator[str]:
    return {"csv": csv_chunks, "fhir": fhir_bundle_chunks, "dicom": dicom_xml_chunks}[fmt](events)


# --- CSV ------------------------------------------------------------------------------------------

CSV_COLUMNS = [
    "seq",
    "timestamp_utc",
    "event_id",
    "event",
    "event_type",
    "event_type_meaning",
    "action",
    "outcome",
    "actor_type",
    "actor",
    "actor_ref",
    "trust",
    "peer_trust",
    "trusts",
    "nhs_number",
    "patient_id",
    "study_instance_uids",
    "client_ip",
    "user_agent",
    "reason",
    "detail",
    "request_id",
    "hash",
    "prev_hash",
]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # A cell a spreadsheet would run as a formula (CSV injection) is quoted to stay text.
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_row(event: AuditEvent) -> list[str]:
    values = [
        event.seq,
        fhir_instant(event.timestamp),
        event.event_id,
        display(event.event_id),
        event.event_type,
        event.event_type_display,
        event.action,
        event.outcome,
        event.actor_type,
        event.actor_label,
        event.actor_ref,
        event.trust,
        event.peer_trust,
        " ".join(event.scope),
        event.nhs_number,
        event.patient_id,
        " ".join(event.study_uids),
        event.client_ip,
        event.user_agent,
        event.reason,
        json.dumps(event.detail, sort_keys=True) if event.detail else "",
        event.request_id,
        event.hash,
        event.prev_hash,
    ]
    return [_cell(value) for value in values]


def csv_chunks(events: Iterable[AuditEvent]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for event in events:
        writer.writerow(csv_row(event))
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


# --- FHIR R4 AuditEvent ----------------------------------------------------------------------------


def _coding(code: str, meaning: str | None = None) -> dict:
    system = DCM_SYSTEM if scheme(code) == DCM else f"{settings.SITE_URL}/fhir/CodeSystem/audit-event-type"
    return {"system": system, "code": code, "display": meaning or display(code)}


def _fhir_agents(event: AuditEvent) -> list[dict]:
    person: dict[str, Any] = {"requestor": True}
    if event.actor_type == ActorType.SYSTEM:
        person["who"] = {"display": event.actor_label or "portal"}
        person["requestor"] = False
    elif event.actor_label:
        system = "share-link-recipient" if event.actor_type == ActorType.SHARE_LINK else "staff-email"
        person["who"] = {
            "identifier": {"system": f"{settings.SITE_URL}/fhir/Id/{system}", "value": event.actor_label},
            "display": event.actor_label,
        }
        person["name"] = event.actor_label
    else:
        person["who"] = {"display": "unauthenticated caller"}
    person["type"] = {"text": ActorType(event.actor_type).label}
    if event.actor_ref:
        person["altId"] = event.actor_ref
    if event.client_ip:
        person["network"] = {"address": event.client_ip, "type": "2"}
    application = {
        "type": {"coding": [_coding("110150", "Application")]},
        "who": {"identifier": {"value": settings.AUDIT_SOURCE_ID}, "display": settings.AUDIT_ENTERPRISE_SITE_ID},
        "requestor": False,
    }
    return [person, application]


def _entity(what: dict, type_code: str, type_display: str, role: str, role_display: str, **extra: Any) -> dict:
    return {
        "what": what,
        "type": {"system": ENTITY_TYPE, "code": type_code, "display": type_display},
        "role": {"system": OBJECT_ROLE, "code": role, "display": role_display},
        **extra,
    }


def _fhir_entities(event: AuditEvent) -> list[dict]:
    entities = []
    if event.nhs_number:
        what = {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": event.nhs_number}}
        entities.append(_entity(what, "1", "Person", "1", "Patient"))
    if event.patient_id:
        system = patient_id_system(event.trust or "unknown")
        what = {"identifier": {"system": system, "value": event.patient_id}}
        entities.append(_entity(what, "1", "Person", "1", "Patient"))
    for uid in event.study_uids:
        what = {"identifier": {"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{uid}"}}
        entities.append(_entity(what, "2", "System Object", "3", "Report", description="Study Instance UID"))
    query = event.detail.get("query") if isinstance(event.detail, dict) else None
    if event.event_id == EventID.QUERY and query:
        what = {"identifier": {"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{STUDY_ROOT_FIND}"}}
        blob = base64.b64encode(json.dumps(query, sort_keys=True).encode()).decode()
        entities.append(_entity(what, "2", "System Object", "24", "Query", query=blob))
    for code, role, meaning in ((event.trust, "17", "Data Repository"), (event.peer_trust, "16", "Data Destination")):
        if code:
            what = {"identifier": {"system": ODS_SYSTEM, "value": code}}
            entities.append(_entity(what, "3", "Organization", role, meaning))
    return entities


def fhir_audit_event(event: AuditEvent) -> dict:
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": f"iep-{event.seq}",
        "extension": [
            {"url": f"{settings.SITE_URL}/fhir/StructureDefinition/audit-chain-seq", "valueInteger": event.seq},
            {"url": f"{settings.SITE_URL}/fhir/StructureDefinition/audit-chain-hash", "valueString": event.hash},
        ],
        "type": _coding(event.event_id),
        "action": event.action,
        "recorded": fhir_instant(event.timestamp),
        "outcome": str(event.outcome),
        "agent": _fhir_agents(event),
        "source": {
            "site": settings.AUDIT_ENTERPRISE_SITE_ID,
            "observer": {"identifier": {"value": settings.AUDIT_SOURCE_ID}, "display": settings.AUDIT_SOURCE_ID},
            "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
    }
    if event.detail:
        resource["extension"].append(
            {
                "url": f"{settings.SITE_URL}/fhir/StructureDefinition/audit-detail",
                "valueString": json.dumps(event.detail, sort_keys=True),
            }
        )
    if event.event_type:
        resource["subtype"] = [_coding(event.event_type)]
    purpose = _fhir_purpose(event)
    if purpose:
        resource["purposeOfEvent"] = purpose
    description = _outcome_description(event)
    if description:
        resource["outcomeDesc"] = description
    entities = _fhir_entities(event)
    if entities:
        resource["entity"] = entities
    return resource


def _fhir_purpose(event: AuditEvent) -> list[dict]:
    if event.event_type == EventType.EMERGENCY_OVERRIDE_STARTED:
        code = {"system": ACT_REASON, "code": "ETREAT", "display": "Emergency Treatment"}
        return [{"coding": [code], "text": event.reason}]
    return [{"text": event.reason}] if event.reason else []


def _outcome_description(event: AuditEvent) -> str:
    if not event.outcome or not isinstance(event.detail, dict):
        return ""
    for key in ("error", "problem", "step"):
        if event.detail.get(key):
            return str(event.detail[key])
    return ""


def fhir_bundle_chunks(events: Iterable[AuditEvent]) -> Iterator[str]:
    head = {"resourceType": "Bundle", "type": "collection", "timestamp": fhir_instant(timezone.now())}
    yield json.dumps(head)[:-1] + ',"entry":['
    separator = ""
    for event in events:
        entry = {
            "fullUrl": f"{settings.SITE_URL}/api/v1/audit-events/{event.seq}/",
            "resource": fhir_audit_event(event),
        }
        yield separator + json.dumps(entry)
        separator = ","
    yield "]}"


# --- DICOM PS3.15 A.5 audit messages ----------------------------------------------------------------


def _coded(parent: ET.Element, tag: str, code: str, system: str, meaning: str) -> ET.Element:
    return ET.SubElement(parent, tag, {"csd-code": code, "codeSystemName": system, "originalText": meaning})


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _participant(
    parent: ET.Element, object_id: str, type_code: str, role: str, id_type: tuple[str, str, str]
) -> ET.Element:
    element = ET.SubElement(
        parent,
        "ParticipantObjectIdentification",
        {
            "ParticipantObjectID": object_id,
            "ParticipantObjectTypeCode": type_code,
            "ParticipantObjectTypeCodeRole": role,
        },
    )
    _coded(element, "ParticipantObjectIDTypeCode", *id_type)
    return element


def _detail(parent: ET.Element, kind: str, text: str) -> None:
    ET.SubElement(parent, "ParticipantObjectDetail", {"type": kind, "value": _b64(text)})


def dicom_audit_message(event: AuditEvent) -> ET.Element:
    message = ET.Element("AuditMessage")
    identification = ET.SubElement(
        message,
        "EventIdentification",
        {
            "EventActionCode": event.action,
            "EventDateTime": fhir_instant(event.timestamp),
            "EventOutcomeIndicator": str(event.outcome),
        },
    )
    _coded(identification, "EventID", event.event_id, DCM, display(event.event_id))
    if event.event_type:
        _coded(identification, "EventTypeCode", event.event_type, scheme(event.event_type), event.event_type_display)
    description = _outcome_description(event)
    if description:
        ET.SubElement(identification, "EventOutcomeDescription").text = description
    if event.event_type == EventType.EMERGENCY_OVERRIDE_STARTED:
        _coded(identification, "PurposeOfUse", "ETREAT", ACT_REASON_OID, "Emergency Treatment")
    _dicom_participants(message, event)
    source = ET.SubElement(
        message,
        "AuditSourceIdentification",
        {"AuditEnterpriseSiteID": settings.AUDIT_ENTERPRISE_SITE_ID, "AuditSourceID": settings.AUDIT_SOURCE_ID},
    )
    _coded(source, "AuditSourceTypeCode", "4", DCM, "Application Server")
    _dicom_objects(message, event)
    return message


def _dicom_participants(message: ET.Element, event: AuditEvent) -> None:
    person = {"UserID": event.actor_label or event.actor_type, "UserIsRequestor": "true"}
    if event.actor_type == ActorType.SYSTEM:
        person["UserIsRequestor"] = "false"
    if event.actor_ref:
        person["AlternativeUserID"] = event.actor_ref
    person["UserName"] = ActorType(event.actor_type).label
    if event.client_ip:
        person.update({"NetworkAccessPointID": event.client_ip, "NetworkAccessPointTypeCode": "2"})
    ET.SubElement(message, "ActiveParticipant", person)
    application = ET.SubElement(
        message, "ActiveParticipant", {"UserID": settings.AUDIT_SOURCE_ID, "UserIsRequestor": "false"}
    )
    _coded(application, "RoleIDCode", "110150", DCM, "Application")


def _dicom_objects(message: ET.Element, event: AuditEvent) -> None:
    if event.nhs_number:
        patient = _participant(message, event.nhs_number, "1", "1", ("2", "RFC-3881", "Patient Number"))
        _detail(patient, "IssuerOfPatientID", "NHS")
    if event.patient_id:
        local = _participant(message, event.patient_id, "1", "1", ("2", "RFC-3881", "Patient Number"))
        issuer = event.detail.get("issuer") if isinstance(event.detail, dict) else None
        _detail(local, "IssuerOfPatientID", str(issuer or event.trust))
    for uid in event.study_uids:
        _participant(message, uid, "2", "3", ("110180", DCM, "Study Instance UID"))
    query = event.detail.get("query") if isinstance(event.detail, dict) else None
    if event.event_id == EventID.QUERY and query:
        found = _participant(message, STUDY_ROOT_FIND, "2", "24", ("110181", DCM, "SOP Class UID"))
        ET.SubElement(found, "ParticipantObjectQuery").text = _b64(json.dumps(query, sort_keys=True))
    for code, role in ((event.trust, "17"), (event.peer_trust, "16")):
        if code:
            _participant(message, code, "3", role, ("ODS", LOCAL_SCHEME, "ODS organisation code"))
    # The portal's own record of the event: its place in the chain, the stated reason, the detail.
    record = _participant(message, str(event.seq), "2", "4", ("SEQ", LOCAL_SCHEME, "Audit chain position"))
    _detail(record, "Hash", event.hash)
    _detail(record, "PrevHash", event.prev_hash)
    if event.reason:
        _detail(record, "Reason", event.reason)
    if event.detail:
        _detail(record, "Detail", json.dumps(event.detail, sort_keys=True))


def dicom_xml_chunks(events: Iterable[AuditEvent]) -> Iterator[str]:
    """AuditMessage elements (PS3.15 A.5.1) inside one <AuditMessages> wrapper, a document per export."""
    yield '<?xml version="1.0" encoding="UTF-8"?>\n<AuditMessages>\n'
    for event in events:
        yield ET.tostring(dicom_audit_message(event), encoding="unicode") + "\n"
    yield "</AuditMessages>\n"
