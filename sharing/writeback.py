"""Objects a consultant's viewer sends back on a link that allows it (an SR, a key object selection, a
segmentation): checked against the link, held for review, and filed into the source PACS when the link's
creator (or an imaging manager of its trust) says so (issue #21 item 3).

Only objects of the link's studies and patient get in: anything else is refused with a reason (the
STOW-RS answer's FailedSOPSequence carries its code), and the refusal is on the audit trail.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pydicom
import structlog
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from accounts import permissions as perms
from audit import catalogue
from audit.codes import Outcome
from audit.context import Actor, system_actor
from dicomkit import staged
from portal.enqueue import enqueue_after_commit

from . import services, staging, tasks
from .models import ShareLink, WriteBack

log = structlog.get_logger(__name__)

KINDS = {
    "1.2.840.10008.5.1.4.1.1.88.11": "sr",  # Basic Text SR
    "1.2.840.10008.5.1.4.1.1.88.22": "sr",  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33": "sr",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.34": "sr",  # Comprehensive 3D SR
    "1.2.840.10008.5.1.4.1.1.88.35": "sr",  # Extensible SR
    "1.2.840.10008.5.1.4.1.1.88.59": "kos",  # Key Object Selection
    "1.2.840.10008.5.1.4.1.1.66.4": "seg",  # Segmentation
}
# Failure reasons of a STOW-RS answer (PS3.18 10.5.3, with PS3.4 C-STORE status codes).
CANNOT_UNDERSTAND, SOP_CLASS_NOT_SUPPORTED, NOT_AUTHORIZED, DUPLICATE = 0xC000, 0x0122, 0x0124, 0x0111
MAX_SUMMARY_LINES = 200
_DATED = {"DATE": "Date", "TIME": "Time", "DATETIME": "DateTime", "UIDREF": "UID"}


@dataclass
class Received:
    """What became of one object sent: stored for review, or refused with a code and a reason."""

    sop_class_uid: str
    sop_instance_uid: str
    failure: int | None = None
    reason: str = ""
    write_back: WriteBack | None = None


def review_dir(link_id: int) -> Path:
    return Path(settings.SPOOL_DIR) / "review" / str(int(link_id))


def writeback_receive(*, link: ShareLink, path: Path, study_in_url: str | None, actor: Actor) -> Received:
    """Check one object the consultant sent and hold it for review, or refuse it with a reason. `path` is
    consumed (moved into the review area or deleted)."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=False)
        sop_class, sop = str(ds.SOPClassUID), str(ds.SOPInstanceUID)
    except (InvalidDicomError, AttributeError, OSError, ValueError, EOFError):
        path.unlink(missing_ok=True)
        return _refused(link, actor, Received("", "", CANNOT_UNDERSTAND, "Not a DICOM instance."))
    received = Received(sop_class, sop)
    reason = _refusal(link, ds, study_in_url)
    if reason is not None:
        path.unlink(missing_ok=True)
        received.failure, received.reason = reason
        return _refused(link, actor, received)
    return _hold(link, ds, path, received, actor)


def _refusal(link: ShareLink, ds: Dataset, study_in_url: str | None) -> tuple[int, str] | None:
    if str(ds.SOPClassUID) not in KINDS:
        return SOP_CLASS_NOT_SUPPORTED, "Only structured reports, key object selections and segmentations are taken."
    study = str(ds.get("StudyInstanceUID", ""))
    if study not in link.study_instance_uids or (study_in_url and study != study_in_url):
        return NOT_AUTHORIZED, "The object is not about a study shared by this link."
    patient = _staged_patient(link)
    if str(ds.get("PatientID", "")) != patient.get("id") or (
        ds.get("IssuerOfPatientID") and patient.get("issuer") and str(ds.IssuerOfPatientID) != patient["issuer"]
    ):
        return NOT_AUTHORIZED, "The object is about another patient than the images shared by this link."
    staged_uids = {e.name[:-4] for e in os.scandir(staging.share_dir(link.pk)) if e.name.endswith(".dcm")}
    if str(ds.SOPInstanceUID) in staged_uids:
        return DUPLICATE, "An object with this SOP Instance UID is one of the shared images."
    evidence = {
        str(item.get("StudyInstanceUID", "")) for item in ds.get("CurrentRequestedProcedureEvidenceSequence", [])
    }
    if evidence - set(link.study_instance_uids):
        return NOT_AUTHORIZED, "The object refers to studies this link does not share."
    return None


def _staged_patient(link: ShareLink) -> dict[str, str]:
    """The patient of the staged copy (the link's one patient), with the issuer of their ID."""
    folder = staging.share_dir(link.pk)
    patient = dict(staged.manifest(folder).get("patient") or {})
    for path in sorted(folder.glob("*.dcm"))[:1]:
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["IssuerOfPatientID"])
        patient["issuer"] = str(header.get("IssuerOfPatientID", ""))
    return patient


def _refused(link: ShareLink, actor: Actor, received: Received) -> Received:
    with transaction.atomic():
        catalogue.WRITE_BACK_RECEIVED.record(
            actor=actor,
            outcome=Outcome.MINOR_FAILURE,
            trust=link.trust.ods_code,
            study_uids=link.study_instance_uids,
            nhs_number=link.nhs_number,
            patient_id=link.patient_id,
            reason=received.reason,
            detail={"share_link": link.pk, "sop": received.sop_instance_uid, "failure": f"{received.failure:04X}"},
        )
    return received


def _hold(link: ShareLink, ds: Dataset, path: Path, received: Received, actor: Actor) -> Received:
    target = review_dir(link.pk) / f"{received.sop_instance_uid}.dcm"
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = _sha256(path)
    existing = WriteBack.objects.filter(link=link, sop_instance_uid=received.sop_instance_uid).first()
    if existing is not None:
        path.unlink(missing_ok=True)
        if existing.sha256 == digest:
            received.write_back = existing  # the same object again (a retry): already held
            return received
        received.failure, received.reason = DUPLICATE, "An object with this SOP Instance UID was already sent."
        return _refused(link, actor, received)
    shutil.move(str(path), target)
    try:
        with transaction.atomic():
            row = WriteBack.objects.create(
                link=link,
                kind=KINDS[received.sop_class_uid],
                sop_class_uid=received.sop_class_uid,
                sop_instance_uid=received.sop_instance_uid,
                study_instance_uid=str(ds.StudyInstanceUID),
                series_instance_uid=str(ds.get("SeriesInstanceUID", ""))[:64],
                summary=summary(ds),
                path=str(target),
                size=target.stat().st_size,
                sha256=digest,
            )
            catalogue.WRITE_BACK_RECEIVED.record(
                actor=actor,
                trust=link.trust.ods_code,
                study_uids=[row.study_instance_uid],
                nhs_number=link.nhs_number,
                patient_id=link.patient_id,
                detail={"share_link": link.pk, "sop": row.sop_instance_uid, "kind": row.kind, "write_back": row.pk},
            )
    except IntegrityError:  # the same object raced in twice: the first one holds it
        received.failure, received.reason = DUPLICATE, "An object with this SOP Instance UID was already sent."
        return received
    received.write_back = row
    return received


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --- a readable rendering for the reviewer ------------------------------------------------------------


def summary(ds: Dataset) -> dict:
    """What the reviewer reads before filing: an SR's content tree as indented lines, a key object
    selection's title and the images it picks, a segmentation's segments."""
    kind = KINDS.get(str(ds.SOPClassUID), "")
    title = _meaning(ds.get("ConceptNameCodeSequence")) or str(ds.get("SeriesDescription", "")) or kind.upper()
    lines: list[str] = []
    if kind in ("sr", "kos"):
        _content_lines(ds.get("ContentSequence", []), 0, lines)
    if kind == "seg":
        for segment in ds.get("SegmentSequence", []):
            what = _meaning(segment.get("SegmentedPropertyTypeCodeSequence"))
            lines.append(f"Segment {segment.get('SegmentNumber', '?')}: {segment.get('SegmentLabel', '')} ({what})")
        lines.append(f"{int(ds.get('NumberOfFrames', 0) or 0)} frames")
    references = {
        str(item.ReferencedSOPInstanceUID)
        for evidence in ds.get("CurrentRequestedProcedureEvidenceSequence", [])
        for series in evidence.get("ReferencedSeriesSequence", [])
        for item in series.get("ReferencedSOPSequence", [])
        if "ReferencedSOPInstanceUID" in item
    }
    if references:
        lines.append(f"Refers to {len(references)} image(s) of the shared studies")
    author = str(ds.get("ContentCreatorName", "") or "")
    return {"kind": kind, "title": title, "author": author, "lines": lines[:MAX_SUMMARY_LINES]}


def _meaning(sequence) -> str:
    return str(sequence[0].get("CodeMeaning", "")) if sequence else ""


def _content_lines(items, depth: int, lines: list[str]) -> None:
    for item in items:
        if len(lines) >= MAX_SUMMARY_LINES or depth > 10:
            return
        concept = _meaning(item.get("ConceptNameCodeSequence"))
        kind = str(item.get("ValueType", ""))
        value = _value_text(item, kind)
        text = f"{concept}: {value}" if concept and value else concept or value
        if text:
            lines.append("  " * depth + text)
        _content_lines(item.get("ContentSequence", []), depth + 1, lines)


def _value_text(item: Dataset, kind: str) -> str:
    if kind == "TEXT":
        return str(item.get("TextValue", ""))
    if kind == "CODE":
        return _meaning(item.get("ConceptCodeSequence"))
    if kind == "NUM":
        for measured in item.get("MeasuredValueSequence", []):
            return (
                f"{measured.get('NumericValue', '')} {_meaning(measured.get('MeasurementUnitsCodeSequence'))}".strip()
            )
        return ""
    if kind == "PNAME":
        return str(item.get("PersonName", ""))
    if kind in _DATED:
        return str(item.get(_DATED[kind], ""))
    if kind == "IMAGE":
        return "image " + ", ".join(
            str(r.get("ReferencedSOPInstanceUID", "")) for r in item.get("ReferencedSOPSequence", [])
        )
    if kind in ("SCOORD", "SCOORD3D"):
        return f"{item.get('GraphicType', 'graphic').lower()} drawn on the image"
    return ""


# --- filing --------------------------------------------------------------------------------------------


@transaction.atomic
def writeback_approve(*, write_back: WriteBack, user, actor: Actor) -> WriteBack:
    """The one action of the reviewer: file the object into the source PACS (a Celery task stores it)."""
    link = write_back.link
    if not perms.may_manage_share_link(user, link):
        raise PermissionDenied("Only the link's creator or an imaging manager of its trust may file what came back.")
    row = WriteBack.objects.select_for_update().get(pk=write_back.pk)
    if row.status not in (WriteBack.Status.HELD, WriteBack.Status.FAILED):
        return row
    row.status, row.filed_by, row.filing_error = WriteBack.Status.FILING, user, ""
    row.save(update_fields=["status", "filed_by", "filing_error"])
    catalogue.WRITE_BACK_APPROVED.record(
        actor=actor,
        trust=link.trust.ods_code,
        study_uids=[row.study_instance_uid],
        nhs_number=link.nhs_number,
        patient_id=link.patient_id,
        detail={"share_link": link.pk, "write_back": row.pk, "sop": row.sop_instance_uid, "kind": row.kind},
    )
    enqueue_after_commit(tasks.file_write_back, row.pk)
    return row


def writeback_file(write_back_id: int) -> str:
    """Store an approved object at the source gateway (the second opinion's filing path). Raises GatewayError
    (see `.permanent`) for the task's one retry policy."""
    row = WriteBack.objects.select_related("link__gateway__trust", "link__trust", "filed_by").get(pk=write_back_id)
    if row.status != WriteBack.Status.FILING:
        return row.status
    WriteBack.objects.filter(pk=row.pk).update(filing_attempts=row.filing_attempts + 1)
    services.store_at_source(row.link.gateway, [Path(row.path)], subject=f"write-back {row.pk}")
    with transaction.atomic():
        WriteBack.objects.filter(pk=row.pk).update(status=WriteBack.Status.FILED, filed_at=timezone.now())
        catalogue.WRITE_BACK_FILED.record(
            actor=system_actor("write-back filing"),
            trust=row.link.trust.ods_code,
            study_uids=[row.study_instance_uid],
            nhs_number=row.link.nhs_number,
            patient_id=row.link.patient_id,
            detail={
                "share_link": row.link_id,
                "write_back": row.pk,
                "sop": row.sop_instance_uid,
                "gateway": row.link.gateway.name,
                "approved_by": row.filed_by.email if row.filed_by else "",
            },
        )
    return WriteBack.Status.FILED


def filing_note(write_back_id: int, error: str) -> None:
    """A transient error: the review page says why it is not filed yet; the task tries again."""
    WriteBack.objects.filter(pk=write_back_id, status=WriteBack.Status.FILING).update(filing_error=error[:2000])


def filing_failed(write_back_id: int, reason: str) -> str:
    """Filing gave up (a permanent refusal, or the retry window passed): the reviewer sees why and may try again."""
    WriteBack.objects.filter(pk=write_back_id).update(status=WriteBack.Status.FAILED, filing_error=reason[:2000])
    return WriteBack.Status.FAILED
