"""Key Object Selection rejection notes (IHE IOCM): the document that tells a PACS which instances of a study
are rejected and why (XDS-I manifests, the other KOS the portal writes, are dicomkit.kos). No Django in here.

The note belongs to the study it names (a new series of its own), carries the patient as the holder has
them, and has the reason as its document title (CID 7011): 113001 Rejected for Quality Reasons, 113037
Rejected for Patient Safety Reasons, 113038 Incorrect Modality Worklist Entry, 113039 Data Retention Policy
Expired.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian

KOS_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.88.59"  # Key Object Selection Document Storage
REJECTION_TITLES = {
    "113001": "Rejected for Quality Reasons",
    "113037": "Rejected for Patient Safety Reasons",
    "113038": "Incorrect Modality Worklist Entry",
    "113039": "Data Retention Policy Expired",
}


@dataclass(frozen=True)
class Referenced:
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str


@dataclass(frozen=True)
class NotePatient:
    """The patient and study as the holder's copy has them, so the note files with the images."""

    patient_id: str
    issuer: str = ""
    patient_name: str = ""
    birth_date: str = ""
    sex: str = ""
    accession_number: str = ""


def _code(value: str, meaning: str, scheme: str = "DCM") -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def rejection_note(
    *,
    study_instance_uid: str,
    patient: NotePatient,
    reason: str,
    instances: list[Referenced],
    sop_instance_uid: str,
    series_instance_uid: str,
    when: datetime,
    comment: str = "",
    institution: str = "",
) -> Dataset:
    """The KOS document rejecting `instances` for `reason` (a CID 7011 code), with fixed UIDs so that a
    note sent again is the same note (a PACS then keeps one)."""
    if reason not in REJECTION_TITLES:
        raise ValueError(f"{reason!r} is not a rejection reason code (CID 7011).")
    if not instances:
        raise ValueError("A rejection note must reference at least one instance.")
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = KOS_SOP_CLASS, sop_instance_uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_instance_uid, series_instance_uid
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "KO", 9999, 1
    ds.PatientID, ds.PatientName = patient.patient_id, patient.patient_name
    if patient.issuer:
        ds.IssuerOfPatientID = patient.issuer
    ds.PatientBirthDate, ds.PatientSex = patient.birth_date, patient.sex
    ds.AccessionNumber = patient.accession_number
    ds.StudyDate = ds.ContentDate = when.strftime("%Y%m%d")
    ds.StudyTime = ds.ContentTime = when.strftime("%H%M%S")
    ds.StudyID, ds.ReferringPhysicianName, ds.Manufacturer = "", "", "Regional Image Exchange Portal"
    ds.SeriesDescription = REJECTION_TITLES[reason]
    if institution:
        ds.InstitutionName = institution[:64]
    ds.ReferencedPerformedProcedureStepSequence = Sequence([])
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    ds.ConceptNameCodeSequence = Sequence([_code(reason, REJECTION_TITLES[reason])])
    template = Dataset()
    template.MappingResource, template.TemplateIdentifier = "DCMR", "2010"
    ds.ContentTemplateSequence = Sequence([template])
    ds.CurrentRequestedProcedureEvidenceSequence = Sequence([_evidence(study_instance_uid, instances)])
    content = []
    if comment:
        text = Dataset()
        text.RelationshipType, text.ValueType = "CONTAINS", "TEXT"
        text.ConceptNameCodeSequence = Sequence([_code("113012", "Key Object Description")])
        text.TextValue = comment[:1024]
        content.append(text)
    for ref in instances:
        item = Dataset()
        item.RelationshipType, item.ValueType = "CONTAINS", "IMAGE"
        sop = Dataset()
        sop.ReferencedSOPClassUID, sop.ReferencedSOPInstanceUID = ref.sop_class_uid, ref.sop_instance_uid
        item.ReferencedSOPSequence = Sequence([sop])
        content.append(item)
    ds.ContentSequence = Sequence(content)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = UID(KOS_SOP_CLASS), UID(sop_instance_uid)
    meta.TransferSyntaxUID, meta.ImplementationClassUID = ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    return ds


def _evidence(study_uid: str, instances: list[Referenced]) -> Dataset:
    by_series: dict[str, list[Referenced]] = {}
    for ref in instances:
        by_series.setdefault(ref.series_instance_uid, []).append(ref)
    study = Dataset()
    study.StudyInstanceUID = study_uid
    series_items = []
    for series_uid, refs in by_series.items():
        series = Dataset()
        series.SeriesInstanceUID = series_uid
        sops = []
        for ref in refs:
            sop = Dataset()
            sop.ReferencedSOPClassUID, sop.ReferencedSOPInstanceUID = ref.sop_class_uid, ref.sop_instance_uid
            sops.append(sop)
        series.ReferencedSOPSequence = Sequence(sops)
        series_items.append(series)
    study.ReferencedSeriesSequence = Sequence(series_items)
    return study


def rejected_by(ds: Dataset) -> tuple[str, set[str]]:
    """A received note's reason code and the SOP Instance UIDs it rejects (("", set()) if not a rejection note)."""
    if str(ds.get("SOPClassUID", "")) != KOS_SOP_CLASS:
        return "", set()
    titles = ds.get("ConceptNameCodeSequence", None) or []
    reason = str(titles[0].get("CodeValue", "")) if titles else ""
    if reason not in REJECTION_TITLES:
        return "", set()
    uids = {
        str(sop.ReferencedSOPInstanceUID)
        for study in ds.get("CurrentRequestedProcedureEvidenceSequence", None) or []
        for series in study.get("ReferencedSeriesSequence", None) or []
        for sop in series.get("ReferencedSOPSequence", None) or []
    }
    return reason, uids


def write(ds: Dataset, path: Path) -> Path:
    """Save the note atomically (a crash leaves it whole or absent)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".kos-", suffix=".dcm")
    try:
        with os.fdopen(fd, "wb") as fh:
            ds.save_as(fh, enforce_file_format=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@dataclass(frozen=True)
class CorrectedIdentity:
    """An identity correction as it is applied to a holder's copy; empty fields stay as the copy has them."""

    patient_name: str = ""
    birth_date: str = ""
    sex: str = ""
    nhs_number: str = ""
    patient_id: str = ""  # applied only where the copy still carries the source's own patient ID
    issuer: str = ""


def corrected_copy(ds: Dataset, change: CorrectedIdentity, *, salt: str, replace_patient_id: bool) -> Dataset:
    """The corrected instance (IHE IOCM): the identity changed and new SOP Instance and Series Instance UIDs
    (derived from the old ones and `salt`, so a retry makes the same ones); the Study Instance UID stays, so
    the corrected instances file with the note that rejects the old ones."""
    from pydicom.uid import generate_uid

    from .identity import NHS_ISSUER, OTHER_PATIENT_IDS, nhs_number_of

    old_nhs = nhs_number_of(ds)
    if change.patient_name:
        ds.PatientName = change.patient_name
    if change.birth_date:
        ds.PatientBirthDate = change.birth_date
    if change.sex:
        ds.PatientSex = change.sex
    if change.patient_id and replace_patient_id:
        ds.PatientID = change.patient_id
        if change.issuer:
            ds.IssuerOfPatientID = change.issuer
    if change.nhs_number:
        if str(ds.get("PatientID", "")) == old_nhs and old_nhs:
            ds.PatientID = change.nhs_number
        for item in ds.get("OtherPatientIDsSequence", None) or []:
            if str(item.get("IssuerOfPatientID", "")).upper() == NHS_ISSUER:
                item.PatientID = change.nhs_number
        if OTHER_PATIENT_IDS in ds or old_nhs:
            ds.add_new(OTHER_PATIENT_IDS, "LO", change.nhs_number)
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[salt, str(ds.SOPInstanceUID)])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[salt, str(ds.SeriesInstanceUID)])
    if getattr(ds, "file_meta", None) is not None:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds
