"""FHIR R4 resources drawn from a StudyManifest: ImagingStudy with a contained Endpoint to the portal's
DICOMweb (the IHE MADO pattern), Binary (the KOS manifest), searchset Bundles and OperationOutcomes.

Identifier systems and timestamps follow the audit export's FHIR conventions (audit.exports), one place
for each: NHS number, ODS code, DICOM UID, a trust's local patient IDs.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from audit.exports import DICOM_UID_SYSTEM, NHS_NUMBER_SYSTEM, ODS_SYSTEM, fhir_instant, patient_id_system

from .models import StudyManifest
from .services import dicomweb_root

DCM_SYSTEM = "http://dicom.nema.org/resources/ontology/DCM"
URI_SYSTEM = "urn:ietf:rfc:3986"
CONNECTION_TYPE = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
IDENTIFIER_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0203"
ENDPOINT_ID = "dicomweb"
FHIR_JSON = "application/fhir+json"


def fhir_base() -> str:
    return f"{settings.SITE_URL}/fhir"


def _modality(code: str) -> dict:
    return {"system": DCM_SYSTEM, "code": code}


def _organization(ods_code: str, name: str) -> dict:
    return {"identifier": {"system": ODS_SYSTEM, "value": ods_code}, "display": name}


def _subject(manifest: StudyManifest) -> dict:
    """The patient by the region's key (NHS number), else by the holder's local patient ID."""
    if manifest.nhs_number:
        identifier = {"system": NHS_NUMBER_SYSTEM, "value": manifest.nhs_number}
    else:
        identifier = {"system": patient_id_system(manifest.holder.ods_code), "value": manifest.patient_id}
    subject: dict[str, Any] = {"type": "Patient", "identifier": identifier}
    if manifest.patient_name:
        subject["display"] = manifest.patient_name.replace("^", " ").strip()
    return subject


def _started(manifest: StudyManifest) -> str | None:
    """StudyDate and StudyTime as a FHIR dateTime in the portal's time zone, when they parse."""
    text = manifest.study_date + (manifest.study_time.split(".")[0].ljust(6, "0") if manifest.study_time else "")
    for fmt in ("%Y%m%d%H%M%S", "%Y%m%d"):
        try:
            when = datetime.strptime(text, fmt)  # noqa: DTZ007 - made aware just below
        except ValueError:
            continue
        if fmt == "%Y%m%d":
            return when.date().isoformat()
        return timezone.make_aware(when).isoformat()
    return None


def endpoint(manifest: StudyManifest) -> dict:
    """Where a viewer reads the study: the portal's DICOMweb root for the trust holding it."""
    return {
        "resourceType": "Endpoint",
        "id": ENDPOINT_ID,
        "status": "active",
        "connectionType": {"system": CONNECTION_TYPE, "code": "dicom-wado-rs", "display": "DICOM WADO-RS"},
        "name": f"Regional Image Exchange Portal DICOMweb for {manifest.holder.name}",
        "managingOrganization": _organization(manifest.holder.ods_code, manifest.holder.name),
        "payloadType": [{"text": "DICOM"}],
        "payloadMimeType": ["application/dicom", "application/dicom+json"],
        "address": dicomweb_root(manifest.holder.ods_code),
    }


def _series(item: dict) -> dict:
    series: dict[str, Any] = {"uid": item["uid"]}
    if item.get("number") is not None:
        series["number"] = item["number"]
    series["modality"] = _modality(item.get("modality") or "OT")
    if item.get("description"):
        series["description"] = item["description"]
    series["numberOfInstances"] = len(item["instances"])
    series["instance"] = [
        {
            "uid": instance["uid"],
            "sopClass": {"system": URI_SYSTEM, "code": f"urn:oid:{instance['sop_class']}"},
            **({"number": instance["number"]} if instance.get("number") is not None else {}),
        }
        for instance in item["instances"]
    ]
    return series


def imaging_study(manifest: StudyManifest) -> dict:
    """The FHIR R4 ImagingStudy of an exchanged study, as its holder holds it."""
    identifiers: list[dict] = [{"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{manifest.study_instance_uid}"}]
    if manifest.accession_number:
        identifiers.append(
            {
                "type": {"coding": [{"system": IDENTIFIER_TYPE, "code": "ACSN"}]},
                "value": manifest.accession_number,
                "assigner": _organization(manifest.holder.ods_code, manifest.holder.name),
            }
        )
    resource: dict[str, Any] = {
        "resourceType": "ImagingStudy",
        "id": str(manifest.pk),
        "meta": {"lastUpdated": fhir_instant(manifest.created_at)},
        "contained": [endpoint(manifest)],
        "identifier": identifiers,
        "status": "available",
        "subject": _subject(manifest),
        "endpoint": [{"reference": f"#{ENDPOINT_ID}"}],
        "numberOfSeries": len(manifest.series),
        "numberOfInstances": manifest.number_of_instances,
    }
    if manifest.modalities:
        resource["modality"] = [_modality(code) for code in manifest.modalities]
    started = _started(manifest)
    if started:
        resource["started"] = started
    if manifest.description:
        resource["description"] = manifest.description
    resource["series"] = [_series(item) for item in manifest.series]
    return resource


def binary(manifest: StudyManifest) -> dict:
    """The KOS manifest as a FHIR Binary (its raw bytes are served as application/dicom when asked for)."""
    return {
        "resourceType": "Binary",
        "id": str(manifest.pk),
        "contentType": "application/dicom",
        "data": base64.b64encode(bytes(manifest.kos)).decode(),
    }


def searchset(resources: list[dict], *, total: int, self_url: str, next_url: str = "") -> dict:
    links = [{"relation": "self", "url": self_url}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": fhir_instant(timezone.now()),
        "total": total,
        "link": links,
        "entry": [
            {
                "fullUrl": f"{fhir_base()}/{resource['resourceType']}/{resource['id']}",
                "resource": resource,
                "search": {"mode": "match"},
            }
            for resource in resources
        ],
    }


def capability_statement() -> dict:
    """What the API answers (GET /fhir/metadata), for clients that discover a server before using it."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-07",
        "publisher": "Regional Image Exchange Portal",
        "kind": "instance",
        "implementation": {
            "description": "Regional Image Exchange Portal: manifests of exchanged studies",
            "url": fhir_base(),
        },
        "fhirVersion": "4.0.1",
        "format": [FHIR_JSON, "json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "description": "Authorization: Token <key> (a portal API token). A token sees the studies its "
                    "trusts hold or sent, to clinicians and imaging managers; every read is audited."
                },
                "resource": [
                    {
                        "type": "ImagingStudy",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            {
                                "name": "patient.identifier",
                                "type": "token",
                                "documentation": f"{NHS_NUMBER_SYSTEM}|<NHS number>",
                            },
                            {
                                "name": "identifier",
                                "type": "token",
                                "documentation": f"{DICOM_UID_SYSTEM}|<Study Instance UID>",
                            },
                            {"name": "_count", "type": "number"},
                        ],
                    },
                    {
                        "type": "Binary",
                        "interaction": [{"code": "read"}],
                        "documentation": "Binary/<ImagingStudy id>: the study's KOS manifest (XDS-I.b); "
                        "Accept: application/dicom for the DICOM file itself.",
                    },
                ],
            }
        ],
    }


def operation_outcome(code: str, diagnostics: str, severity: str = "error") -> dict:
    """An error as FHIR says to answer one (`code` from the issue-type value set: invalid, not-found...)."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }
