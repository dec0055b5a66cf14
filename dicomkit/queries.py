"""Query identifiers (shared by C-FIND and QIDO-RS) and the conversion of answers to typed results."""

from __future__ import annotations

import copy
from collections.abc import Iterable

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from . import nhs
from .identity import OTHER_PATIENT_IDS, nhs_number_of, other_patient_ids, person_name, text, values
from .models import Instance, Series, Study, StudyQuery

STUDY_RETURN_KEYS = (
    "StudyInstanceUID",
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ModalitiesInStudy",
    "StudyDescription",
    "AccessionNumber",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)


def _base(level: str) -> Dataset:
    ds = Dataset()
    # Ask for UTF-8 answers so names in any script survive (an SCP may still answer in its own).
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.QueryRetrieveLevel = level
    return ds


def date_range(start: str, end: str) -> str:
    """DICOM range matching value: `A-B`, `A-`, `-B`, or '' for none."""
    start, end = start.replace("-", ""), end.replace("-", "")
    if not start and not end:
        return ""
    if start and start == end:
        return start
    return f"{start}-{end}"


def study_identifiers(query: StudyQuery) -> list[Dataset]:
    """One identifier, or two for an NHS number: it may be the PatientID or an Other Patient ID."""
    ds = _base("STUDY")
    for keyword in STUDY_RETURN_KEYS:
        setattr(ds, keyword, "")
    ds.add_new(OTHER_PATIENT_IDS, "LO", "")
    ds.OtherPatientIDsSequence = Sequence([])
    ds.StudyInstanceUID = query.study_instance_uid
    ds.PatientID = query.patient_id
    ds.IssuerOfPatientID = query.issuer_of_patient_id
    ds.PatientName = query.patient_name
    ds.PatientBirthDate = query.birth_date.replace("-", "")
    ds.StudyDate = date_range(query.study_date_from, query.study_date_to)
    ds.ModalitiesInStudy = query.modality.upper()
    ds.AccessionNumber = query.accession_number
    if not query.nhs_number:
        return [ds]
    number = nhs.normalise(query.nhs_number)
    as_patient_id = copy.deepcopy(ds)
    as_patient_id.PatientID = number
    as_other_id = copy.deepcopy(ds)
    as_other_id[OTHER_PATIENT_IDS].value = number
    return [as_patient_id, as_other_id]


def series_identifier(study_uid: str) -> Dataset:
    ds = _base("SERIES")
    ds.StudyInstanceUID = study_uid
    for keyword in ("SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription"):
        setattr(ds, keyword, "")
    ds.NumberOfSeriesRelatedInstances = ""
    return ds


def instance_identifier(study_uid: str, series_uid: str | None = None) -> Dataset:
    ds = _base("IMAGE")
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid or ""
    ds.SOPInstanceUID = ""
    ds.SOPClassUID = ""
    ds.InstanceNumber = ""
    return ds


def instance_uid_identifier(study_uid: str, sop_uids: Iterable[str] = ()) -> Dataset:
    """Which of these instances (all of the study's, if none are named) the SCP holds: SOP Instance
    UIDs only, the cheapest answer an index can give (UID list matching, PS3.4 C.2.2.2.2)."""
    ds = _base("IMAGE")
    ds.StudyInstanceUID = study_uid
    ds.SOPInstanceUID = list(sop_uids) or ""
    return ds


def _int(ds: Dataset, keyword: str) -> int | None:
    raw = text(ds, keyword)
    try:
        return int(float(raw)) if raw else None
    except ValueError:
        return None


def study_from(ds: Dataset) -> Study:
    return Study(
        study_instance_uid=text(ds, "StudyInstanceUID"),
        patient_name=person_name(ds),
        patient_id=text(ds, "PatientID"),
        issuer_of_patient_id=text(ds, "IssuerOfPatientID"),
        other_patient_ids=other_patient_ids(ds),
        nhs_number=nhs_number_of(ds),
        birth_date=text(ds, "PatientBirthDate"),
        sex=text(ds, "PatientSex"),
        study_date=text(ds, "StudyDate"),
        study_time=text(ds, "StudyTime"),
        modalities=tuple(m for v in values(ds, "ModalitiesInStudy") for m in v.split("\\") if m),
        description=text(ds, "StudyDescription"),
        accession_number=text(ds, "AccessionNumber"),
        series_count=_int(ds, "NumberOfStudyRelatedSeries"),
        instance_count=_int(ds, "NumberOfStudyRelatedInstances"),
    )


def series_from(ds: Dataset) -> Series:
    return Series(
        study_instance_uid=text(ds, "StudyInstanceUID"),
        series_instance_uid=text(ds, "SeriesInstanceUID"),
        modality=text(ds, "Modality"),
        series_number=_int(ds, "SeriesNumber"),
        description=text(ds, "SeriesDescription"),
        instance_count=_int(ds, "NumberOfSeriesRelatedInstances"),
    )


def instance_from(ds: Dataset) -> Instance:
    return Instance(
        study_instance_uid=text(ds, "StudyInstanceUID"),
        series_instance_uid=text(ds, "SeriesInstanceUID"),
        sop_instance_uid=text(ds, "SOPInstanceUID"),
        sop_class_uid=text(ds, "SOPClassUID"),
        instance_number=_int(ds, "InstanceNumber"),
    )


def merge_studies(answers: Iterable[Dataset], query: StudyQuery) -> list[Study]:
    """Typed, de-duplicated studies, newest first; for an NHS search only those that carry it."""
    wanted = nhs.normalise(query.nhs_number) if query.nhs_number else ""
    studies: dict[str, Study] = {}
    for ds in answers:
        study = study_from(ds)
        if not study.study_instance_uid or (wanted and study.nhs_number != wanted):
            continue
        studies.setdefault(study.study_instance_uid, study)
    ordered = sorted(studies.values(), key=lambda s: (s.study_date, s.study_time), reverse=True)
    return ordered[: query.limit] if query.limit else ordered
