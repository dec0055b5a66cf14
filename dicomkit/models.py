"""Typed values the gateway clients take and return."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .quarantine import QuarantineRecord


@dataclass(frozen=True)
class EchoResult:
    ok: bool
    latency_ms: float | None
    error: str = ""


@dataclass(frozen=True)
class StudyQuery:
    """Study-level search. Names and IDs accept DICOM wildcards `*` and `?`; dates are YYYYMMDD."""

    nhs_number: str = ""
    patient_id: str = ""
    issuer_of_patient_id: str = ""
    patient_name: str = ""
    birth_date: str = ""
    study_date_from: str = ""
    study_date_to: str = ""
    modality: str = ""
    accession_number: str = ""
    study_instance_uid: str = ""
    limit: int = 500


@dataclass(frozen=True)
class OtherPatientID:
    patient_id: str
    issuer: str = ""


@dataclass(frozen=True)
class Study:
    study_instance_uid: str
    patient_name: str = ""
    patient_id: str = ""
    issuer_of_patient_id: str = ""
    other_patient_ids: tuple[OtherPatientID, ...] = ()
    nhs_number: str = ""
    birth_date: str = ""
    sex: str = ""
    study_date: str = ""
    study_time: str = ""
    modalities: tuple[str, ...] = ()
    description: str = ""
    accession_number: str = ""
    series_count: int | None = None
    instance_count: int | None = None


@dataclass(frozen=True)
class Series:
    study_instance_uid: str
    series_instance_uid: str
    modality: str = ""
    series_number: int | None = None
    description: str = ""
    instance_count: int | None = None


@dataclass(frozen=True)
class Instance:
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str = ""
    instance_number: int | None = None


@dataclass(frozen=True)
class RetrievedInstance:
    """One instance that has landed, complete, in the caller's spool directory.

    The file is the caller's from the moment it is yielded: move it, or delete it when done.
    `sha256` is that of the whole file when the retrieval hashed it while writing ("" if not), so
    the caller need not read the file again to record it.
    """

    path: Path
    sop_instance_uid: str
    sop_class_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    size: int
    sha256: str = ""


@dataclass
class RetrieveSummary:
    """How a retrieve ended; filled in as the retrieve runs."""

    completed: int = 0
    failed: int = 0
    warning: int = 0
    failed_sop_instance_uids: list[str] = field(default_factory=list)
    quarantined: list[QuarantineRecord] = field(default_factory=list)  # refused on arrival, kept aside
    status: int | None = None
    not_delivered: int = 0  # C-MOVE: the peer sent them but they did not reach this job's spool

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.quarantined and self.not_delivered == 0


@dataclass(frozen=True)
class StoreResult:
    """What happened to one file given to `store()`."""

    path: Path
    sop_instance_uid: str
    ok: bool
    status: int | None = None
    message: str = ""
    transfer_syntax_uid: str = ""
    decompressed: bool = False
    permanent: bool = False
    # The destination already held an instance with this SOP Instance UID (C-STORE 0x0111 Duplicate SOP
    # Instance, or STOW-RS failure reason 0x0111): `ok`, nothing new stored, nothing to send again.
    already_present: bool = False
