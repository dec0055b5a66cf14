"""A second opinion as a DICOM Basic Text SR document (PS3.3 A.35.1), filed into the study it is about.

No Django here. The patient and study modules are copied from an instance of the study, so the
trust's PACS files the report with the images; the report gets a series of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
SERIES_NUMBER = 9901  # out of the way of the modality's own series numbers

# Patient, patient study and general study modules: what makes the PACS file the report with the images.
COPIED = (
    "SpecificCharacterSet",
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "OtherPatientIDsSequence",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
)


@dataclass(frozen=True)
class Opinion:
    text: str
    conclusion: str
    urgent: bool
    consultant_name: str
    registration_number: str
    written_at: datetime
    purpose: str = ""


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _item(relationship: str, value_type: str, concept: Dataset, **values: object) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    item.ConceptNameCodeSequence = Sequence([concept])
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _content(opinion: Opinion) -> list[Dataset]:
    urgency = "URGENT: the consultant flagged this opinion as urgent." if opinion.urgent else "Routine"
    observer = f"{opinion.consultant_name} (registration {opinion.registration_number})"
    return [
        _item("HAS OBS CONTEXT", "PNAME", _code("121008", "DCM", "Person Observer Name"), PersonName=_pn(opinion)),
        _item(
            "HAS OBS CONTEXT",
            "TEXT",
            _code("121011", "DCM", "Person Observer's Role in this Procedure"),
            TextValue=f"External consultant, second opinion: {observer}",
        ),
        _item("CONTAINS", "TEXT", _code("121071", "DCM", "Finding"), TextValue=opinion.text),
        _item("CONTAINS", "TEXT", _code("121077", "DCM", "Conclusion"), TextValue=opinion.conclusion),
        _item("CONTAINS", "TEXT", _code("IEP201", "99IEP", "Urgency"), TextValue=urgency),
    ]


def _pn(opinion: Opinion) -> str:
    # A free-text name has no reliable family/given split; keep it whole as the family name component.
    return opinion.consultant_name.replace("^", " ").replace("\\", " ")[:64]


def basic_text_sr(source: Dataset, opinion: Opinion, *, institution: str = "") -> Dataset:
    """The SR document for the study `source` belongs to (`source` is any instance of it)."""
    ds = Dataset()
    for keyword in COPIED:
        if keyword in source:
            ds[keyword] = source[keyword]
    ds.SOPClassUID = BASIC_TEXT_SR
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "SR"
    ds.SeriesNumber = SERIES_NUMBER
    ds.SeriesDescription = "External second opinion"
    ds.InstanceNumber = 1
    ds.Manufacturer = "Regional Image Exchange Portal"
    if institution:
        ds.InstitutionName = institution[:64]
    when = opinion.written_at
    ds.ContentDate = ds.InstanceCreationDate = when.strftime("%Y%m%d")
    ds.ContentTime = ds.InstanceCreationTime = when.strftime("%H%M%S")
    ds.SeriesDate, ds.SeriesTime = ds.ContentDate, ds.ContentTime
    ds.CompletionFlag = "COMPLETE"
    # An outside consultant's report: nobody at the trust has verified it.
    ds.VerificationFlag = "UNVERIFIED"
    ds.ReferencedPerformedProcedureStepSequence = Sequence()
    ds.PerformedProcedureCodeSequence = Sequence()
    # The root container.
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.ConceptNameCodeSequence = Sequence([_code("18748-4", "LN", "Diagnostic imaging report")])
    ds.ContentSequence = Sequence(_content(opinion))
    return ds


def write(ds: Dataset, path: Path) -> Path:
    """Write as a Part 10 file (explicit VR little endian)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
