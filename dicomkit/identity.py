"""Patient identity in DICOM: names decoded per Specific Character Set, NHS numbers wherever stored."""

from __future__ import annotations

from typing import Any

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag

from . import nhs
from .models import OtherPatientID

NHS_ISSUER = "NHS"
OTHER_PATIENT_IDS = Tag(0x0010, 0x1000)  # retired keyword in newer dictionaries; match by tag number


def text(ds: Dataset, keyword: str) -> str:
    """A string attribute as text ('' when absent or empty); first value of a multi-valued one."""
    value = ds.get(keyword)
    if value is None or value == "":
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return str(value[0]).strip() if len(value) else ""
    return str(value).strip()


def values(ds: Dataset, tag_or_keyword: int | str) -> list[str]:
    """All values of a multi-valued string attribute."""
    elem = ds.get(tag_or_keyword)
    if elem is None:
        return []
    value: Any = elem.value if hasattr(elem, "value") else elem
    if value is None or value == "":
        return []
    if isinstance(value, str | bytes):
        return [str(value).strip()]
    return [str(v).strip() for v in value if str(v).strip()]


def person_name(ds: Dataset, keyword: str = "PatientName") -> str:
    """A PN decoded per the dataset's Specific Character Set.

    A peer that sends non-ASCII bytes without declaring a character set is non-conformant but
    common: try UTF-8 before Latin-1 so names are not silently garbled.
    """
    elem = ds.get_item(keyword)
    if elem is None:
        return ""
    if isinstance(elem, RawDataElement) and "SpecificCharacterSet" not in ds and elem.value:
        raw = bytes(elem.value).rstrip(b" \x00")
        for codec in ("ascii", "utf-8", "latin-1"):
            try:
                return raw.decode(codec).strip()
            except UnicodeDecodeError:
                continue
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def other_patient_ids(ds: Dataset) -> tuple[OtherPatientID, ...]:
    """Other Patient IDs from the sequence (with issuers) and from the retired (0010,1000)."""
    found: list[OtherPatientID] = []
    for item in ds.get("OtherPatientIDsSequence", None) or []:
        pid = text(item, "PatientID")
        if pid:
            found.append(OtherPatientID(pid, text(item, "IssuerOfPatientID")))
    known = {o.patient_id for o in found}
    found.extend(OtherPatientID(pid) for pid in values(ds, OTHER_PATIENT_IDS) if pid not in known)
    return tuple(found)


def nhs_number_of(ds: Dataset) -> str:
    """The NHS number a dataset carries, as ten digits, or ''.

    It is either the PatientID with IssuerOfPatientID 'NHS', or an Other Patient ID with issuer
    'NHS'. The retired (0010,1000) has no issuer, so a valid number there counts only when the
    dataset has no OtherPatientIDsSequence to say what its IDs are.
    """
    if text(ds, "IssuerOfPatientID").upper() == NHS_ISSUER and nhs.is_valid(text(ds, "PatientID")):
        return nhs.normalise(text(ds, "PatientID"))
    sequence = ds.get("OtherPatientIDsSequence", None) or []
    for item in sequence:
        if text(item, "IssuerOfPatientID").upper() == NHS_ISSUER and nhs.is_valid(text(item, "PatientID")):
            return nhs.normalise(text(item, "PatientID"))
    if not sequence:
        for pid in values(ds, OTHER_PATIENT_IDS):
            if nhs.is_valid(pid):
                return nhs.normalise(pid)
    return ""
