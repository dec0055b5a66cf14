"""Rewriting a DICOM file's patient identity for the receiving trust. No Django in here.

Only patient identity and (optionally) the accession number and study description change; SOP, Series
and Study Instance UIDs never do, so the destination still recognises every instance.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dicomkit.identity import NHS_ISSUER, OTHER_PATIENT_IDS, nhs_number_of, person_name, text, values

ACCESSION_MAX = 16  # SH
DESCRIPTION_MAX = 64  # LO


@dataclass(frozen=True)
class SourceIdentity:
    """Who a study says its patient is, as the sending trust wrote it."""

    patient_id: str
    issuer: str
    nhs_number: str
    patient_name: str
    birth_date: str
    sex: str


@dataclass(frozen=True)
class Rewrite:
    """What to change. `patient_id` None keeps PatientID/IssuerOfPatientID as sent."""

    patient_id: str | None = None
    issuer: str = ""
    prefix: str = ""  # the sending trust's ODS code
    prefix_accession: bool = False
    prefix_description: bool = False

    @property
    def changes_anything(self) -> bool:
        return self.patient_id is not None or (bool(self.prefix) and (self.prefix_accession or self.prefix_description))


def read_identity(path: Path) -> SourceIdentity:
    ds = dcmread(path, stop_before_pixels=True)
    return SourceIdentity(
        patient_id=text(ds, "PatientID"),
        issuer=text(ds, "IssuerOfPatientID"),
        nhs_number=nhs_number_of(ds),
        patient_name=person_name(ds),
        birth_date=text(ds, "PatientBirthDate"),
        sex=text(ds, "PatientSex"),
    )


def apply(ds: Dataset, rewrite: Rewrite) -> None:
    """Change the dataset in memory (see the module docstring for what may change)."""
    if rewrite.patient_id is not None:
        _file_under(ds, rewrite.patient_id, rewrite.issuer)
    if rewrite.prefix and rewrite.prefix_accession:
        accession = text(ds, "AccessionNumber")
        # Prefixed once only (a study sent on again keeps one prefix); a value too long for SH stays as
        # sent rather than being cut, since a cut accession number could match another study's.
        if accession and not accession.startswith(rewrite.prefix) and len(rewrite.prefix + accession) <= ACCESSION_MAX:
            ds.AccessionNumber = rewrite.prefix + accession
    if rewrite.prefix and rewrite.prefix_description:
        description = text(ds, "StudyDescription")
        # Once only, like the accession number: held files are rewritten again when their forward is retried,
        # and an instance already stored must not go out a second time with other content.
        if description != rewrite.prefix and not description.startswith(f"{rewrite.prefix} "):
            ds.StudyDescription = f"{rewrite.prefix} {description}".strip()[:DESCRIPTION_MAX]


def _file_under(ds: Dataset, patient_id: str, issuer: str) -> None:
    """PatientID/Issuer become the local ones; every identifier the study came with moves into the Other
    Patient IDs (sequence with issuers, and the retired (0010,1000) that PACS match NHS numbers on)."""
    old_id, old_issuer, number = text(ds, "PatientID"), text(ds, "IssuerOfPatientID"), nhs_number_of(ds)
    items = list(ds.get("OtherPatientIDsSequence", None) or [])
    known = {(text(i, "PatientID"), text(i, "IssuerOfPatientID").upper()) for i in items}
    keep = [(old_id, old_issuer), (number, NHS_ISSUER)]
    for pid, pid_issuer in keep:
        if not pid or (pid, pid_issuer.upper()) in known or (pid, pid_issuer) == (patient_id, issuer):
            continue
        item = Dataset()
        item.PatientID = pid
        item.IssuerOfPatientID = pid_issuer
        item.TypeOfPatientID = "TEXT"
        items.append(item)
        known.add((pid, pid_issuer.upper()))
    ds.OtherPatientIDsSequence = Sequence(items)
    # The retired (0010,1000) is what PACS match an NHS number on, and Orthanc matches it as one string:
    # "nhs\\old MRN" was not found by a search for the NHS number at the destination. With an NHS number it
    # holds that alone (the sender's IDs stay in the sequence, with their issuers).
    others = [number] if number and number != patient_id else values(ds, OTHER_PATIENT_IDS)
    if not number:
        others += [pid for pid in (old_id,) if pid and pid not in others and pid != patient_id]
    if others:
        ds.add_new(OTHER_PATIENT_IDS, "LO", others if len(others) > 1 else others[0])
    ds.PatientID = patient_id
    ds.IssuerOfPatientID = issuer


def rewrite_file(path: Path, rewrite: Rewrite) -> None:
    """Rewrite in place, atomically: a crash leaves the old file or the new one, never half of each."""
    if not rewrite.changes_anything:
        return
    ds = dcmread(path)
    apply(ds, rewrite)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".rewrite-", suffix=".dcm")
    try:
        with os.fdopen(fd, "wb") as fh:
            ds.save_as(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def keep_safe(path: Path, folder: Path) -> Path:
    """Move a spooled file into `folder` and fsync file and folder: a held instance survives a crash."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    if path.parent.stat().st_dev == folder.stat().st_dev:
        os.replace(path, target)
    else:
        shutil.copyfile(path, target)
        path.unlink()
    with target.open("rb") as fh:
        os.fsync(fh.fileno())
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return target
