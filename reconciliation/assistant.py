"""The reconciliation assistant: what an imaging manager needs to decide where a held arrival is filed.

The held study (its own header and images, from the queue folder) beside the local patients the trust's
PACS returns by NHS number, then by name and birth date, each difference marked; the other held studies
of the same patient and transfer, so one decision can file them all. Reads only; resolving stays in
reconciliation.services.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from audit.context import Actor
from dicomkit import staged
from exchange.services import GatewayUnavailable, LocalPatient, local_patients

from .models import Outcome, StudyReconciliation
from .services import queue_dir


@dataclass
class Candidate:
    patient: LocalPatient
    differs: set[str] = field(default_factory=set)  # name, birth_date, sex, nhs_number

    @property
    def name(self) -> str:
        return sorted(self.patient.names)[0] if self.patient.names else ""


@dataclass
class Assistant:
    held: dict[str, Any]  # the study as held: description, date, modalities, series, images, thumbnails
    candidates: list[Candidate]
    lookup_error: str
    siblings: list[StudyReconciliation]


def _name_key(dicom_name: str) -> tuple[str, str]:
    parts = [*dicom_name.split("=")[0].split("^"), ""][:2]
    return parts[0].strip().casefold(), parts[1].strip().casefold()


def held_study(item: StudyReconciliation) -> dict[str, Any]:
    """The held copy's structure, read from its files (no PACS holds it yet)."""
    folder = queue_dir(item.pk)
    if not folder.is_dir():
        return {"series": [], "thumbnails": []}
    manifest = staged.manifest(folder)
    studies = manifest.get("studies") or [{}]
    study = studies[0]
    series = study.get("series", [])
    thumbnails = [s["instances"][len(s["instances"]) // 2]["sop_instance_uid"] for s in series if s.get("instances")][
        :6
    ]
    return {
        "description": study.get("description", ""),
        "study_date": study.get("date", ""),
        "accession_number": study.get("accession_number", ""),
        "modalities": sorted({s.get("modality", "") for s in series if s.get("modality")}),
        "series": series,
        "images": sum(len(s.get("instances", [])) for s in series),
        "thumbnails": thumbnails,
    }


def differences(item: StudyReconciliation, patient: LocalPatient) -> set[str]:
    found = set()
    if (
        item.patient_name
        and patient.names
        and _name_key(item.patient_name) not in {_name_key(n) for n in patient.names}
    ):
        found.add("name")
    births = {b for b in patient.birth_dates if b}
    if item.birth_date and births and births != {item.birth_date}:
        found.add("birth_date")
    sexes = {s for s in patient.sexes if s}
    if item.sex and sexes and sexes != {item.sex}:
        found.add("sex")
    if item.nhs_number and patient.nhs_numbers and patient.nhs_numbers != {item.nhs_number}:
        found.add("nhs_number")
    return found


def siblings_of(item: StudyReconciliation) -> list[StudyReconciliation]:
    """Other held studies of the same transfer and patient (same NHS number, else same sender's ID)."""
    others = StudyReconciliation.objects.filter(transfer=item.transfer, outcome=Outcome.HELD).exclude(pk=item.pk)
    if item.nhs_number:
        others = others.filter(nhs_number=item.nhs_number)
    else:
        others = others.filter(source_patient_id=item.source_patient_id, source_issuer=item.source_issuer)
    return list(others.order_by("pk"))


def assistant_for(item: StudyReconciliation, *, actor: Actor) -> Assistant:
    family = _name_key(item.patient_name)[0]
    try:
        patients = local_patients(
            trust=item.destination,
            actor=actor,
            nhs_number=item.nhs_number,
            family_name=item.patient_name.split("^")[0].strip() if family else "",
            birth_date=item.birth_date,
            purpose=f"reconciliation {item.pk}",
        )
        error = ""
    except GatewayUnavailable as exc:
        patients, error = [], str(exc)
    candidates = [Candidate(p, differences(item, p)) for p in patients]
    # By NHS number first, then the fewest differences.
    candidates.sort(key=lambda c: (c.patient.found_by != "NHS number", len(c.differs), c.patient.patient_id))
    return Assistant(held_study(item), candidates, error, siblings_of(item))
