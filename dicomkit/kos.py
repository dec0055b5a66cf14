"""Key Object Selection manifests in the IHE XDS-I.b form (RAD TF-3 4.68.4.1.2.3, DICOM TID 2010).

One manifest per study: a KOS document (SOP class 1.2.840.10008.5.1.4.1.1.88.59) in the study it
describes, titled (113030, DCM, "Manifest"), whose Current Requested Procedure Evidence Sequence names
every instance by series, with where to retrieve each series: Retrieve AE Title (DIMSE), Retrieve URL
(WADO-RS) and Retrieve Location UID (the imaging document source). The content tree references every
instance again (IMAGE for images, WAVEFORM, COMPOSITE for everything else), as TID 2010 asks.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime

from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, generate_uid

KOS_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.88.59"
MANIFEST_TITLE = ("113030", "DCM", "Manifest")
TEMPLATE = ("DCMR", "2010")


@dataclass(frozen=True)
class ManifestInstance:
    sop_instance_uid: str
    sop_class_uid: str
    instance_number: int | None = None


@dataclass(frozen=True)
class ManifestSeries:
    series_instance_uid: str
    modality: str = ""
    series_number: int | None = None
    description: str = ""
    instances: tuple[ManifestInstance, ...] = ()
    retrieve_url: str = ""  # WADO-RS URL of this series


@dataclass(frozen=True)
class ManifestStudy:
    """What the manifest says of a study, as its holder's PACS answered for it."""

    study_instance_uid: str
    patient_id: str
    issuer_of_patient_id: str = ""
    patient_name: str = ""
    birth_date: str = ""
    sex: str = ""
    nhs_number: str = ""
    study_date: str = ""
    study_time: str = ""
    accession_number: str = ""
    description: str = ""
    series: tuple[ManifestSeries, ...] = ()
    retrieve_ae_title: str = ""  # the holder's gateway, for C-MOVE / C-GET
    retrieve_location_uid: str = ""  # the imaging document source (the portal)
    institution: str = ""


def value_type(sop_class_uid: str) -> str:
    """TID 2010's value type for a referenced object: IMAGE, WAVEFORM or COMPOSITE."""
    name = UID(sop_class_uid).name
    if "Waveform" in name or name.endswith("ECG Storage"):
        return "WAVEFORM"
    if "Image Storage" in name:
        return "IMAGE"
    return "COMPOSITE"


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _sop_ref(instance: ManifestInstance) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID = instance.sop_class_uid
    ref.ReferencedSOPInstanceUID = instance.sop_instance_uid
    return ref


def _evidence(study: ManifestStudy) -> DicomSequence:
    item = Dataset()
    item.StudyInstanceUID = study.study_instance_uid
    series_items = []
    for series in study.series:
        ref = Dataset()
        ref.SeriesInstanceUID = series.series_instance_uid
        if study.retrieve_ae_title:
            ref.RetrieveAETitle = study.retrieve_ae_title
        if series.retrieve_url:
            ref.RetrieveURL = series.retrieve_url
        if study.retrieve_location_uid:
            ref.RetrieveLocationUID = study.retrieve_location_uid
        ref.ReferencedSOPSequence = DicomSequence([_sop_ref(i) for i in series.instances])
        series_items.append(ref)
    item.ReferencedSeriesSequence = DicomSequence(series_items)
    return DicomSequence([item])


def _content(study: ManifestStudy) -> DicomSequence:
    items = []
    for series in study.series:
        for instance in series.instances:
            item = Dataset()
            item.RelationshipType = "CONTAINS"
            item.ValueType = value_type(instance.sop_class_uid)
            item.ReferencedSOPSequence = DicomSequence([_sop_ref(instance)])
            items.append(item)
    return DicomSequence(items)


def build_manifest(
    study: ManifestStudy, *, now: datetime, sop_instance_uid: str = "", series_instance_uid: str = ""
) -> Dataset:
    """The KOS manifest of `study` as a dataset with its file meta (save with `manifest_bytes`)."""
    if not study.series or not any(s.instances for s in study.series):
        raise ValueError("A manifest must reference at least one instance.")
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = KOS_SOP_CLASS
    ds.SOPInstanceUID = sop_instance_uid or generate_uid()
    # Patient (the identity as the holder files it) and study (the study the manifest describes).
    ds.PatientName = study.patient_name
    ds.PatientID = study.patient_id
    if study.issuer_of_patient_id:
        ds.IssuerOfPatientID = study.issuer_of_patient_id
    ds.PatientBirthDate = study.birth_date
    ds.PatientSex = study.sex
    if study.nhs_number:
        other = Dataset()
        other.PatientID, other.IssuerOfPatientID, other.TypeOfPatientID = study.nhs_number, "NHS", "TEXT"
        ds.OtherPatientIDsSequence = DicomSequence([other])
    ds.StudyInstanceUID = study.study_instance_uid
    ds.StudyDate, ds.StudyTime = study.study_date, study.study_time
    ds.AccessionNumber = study.accession_number
    ds.ReferringPhysicianName = ""
    ds.StudyID = ""
    if study.description:
        ds.StudyDescription = study.description
    # Its own series (KO), equipment and document.
    ds.Modality = "KO"
    ds.SeriesInstanceUID = series_instance_uid or generate_uid()
    ds.SeriesNumber = 9901
    ds.SeriesDescription = "Manifest"
    ds.ReferencedPerformedProcedureStepSequence = DicomSequence([])
    ds.Manufacturer = "Regional Image Exchange Portal"
    if study.institution:
        ds.InstitutionName = study.institution
    ds.InstanceNumber = 1
    ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.InstanceCreationDate, ds.InstanceCreationTime = ds.ContentDate, ds.ContentTime
    ds.CurrentRequestedProcedureEvidenceSequence = _evidence(study)
    # The SR document content: the root container and its references (TID 2010).
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = DicomSequence([_code(*MANIFEST_TITLE)])
    ds.ContinuityOfContent = "SEPARATE"
    template = Dataset()
    template.MappingResource, template.TemplateIdentifier = TEMPLATE
    ds.ContentTemplateSequence = DicomSequence([template])
    ds.ContentSequence = _content(study)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    return ds


def manifest_bytes(ds: Dataset) -> bytes:
    """The manifest as a DICOM Part 10 file."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def referenced_instances(ds: Dataset) -> dict[str, str]:
    """SOP Instance UID → SOP Class UID of every instance a manifest's evidence names."""
    found = {}
    for study in ds.CurrentRequestedProcedureEvidenceSequence:
        for series in study.ReferencedSeriesSequence:
            for ref in series.ReferencedSOPSequence:
                found[str(ref.ReferencedSOPInstanceUID)] = str(ref.ReferencedSOPClassUID)
    return found
