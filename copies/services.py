"""The register of copies and the corrections that follow them.

Register: every instance the portal stores at a trust's PACS is noted as it goes out (the engine's last
stage, reconciliation's forward, second-opinion filing) with the identity the holder's copy carries, and
becomes a copy once the transfer's end (transfers.completion → signals.transfer_recorded) says the
destination stored it.

Corrections (IHE IOCM): the source's imaging manager rejects instances, series or a study with a reason, or
corrects the patient's identity; every holder is sent a Key Object Selection rejection note (and, for an
identity correction where the agreement allows, the corrected instances) through the gateway-access layer
under its one retry policy; the holder's imaging managers acknowledge it. Each step is on the audit trail.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, Subquery
from django.utils import timezone
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from accounts import permissions as perms
from audit import catalogue
from audit.codes import ActorType
from audit.context import Actor, system_actor
from dicomkit import GatewayClient, GatewayError, RetrievedInstance, rejection
from dicomkit.identity import nhs_number_of, person_name, text
from directory.models import Gateway, SharingAgreement, Trust
from portal.enqueue import enqueue_after_commit
from transfers.models import InstanceState, Transfer, TransferInstance

from . import tasks
from .models import (
    Copy,
    CopyState,
    Correction,
    CorrectionDelivery,
    CorrectionKind,
    DeliveryState,
    RejectionReason,
    Via,
)

log = structlog.get_logger(__name__)
ACTOR = system_actor("corrections")


# --- the register ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeldIdentity:
    """Who a copy says its patient is, read from the bytes that go out."""

    patient_id: str
    issuer: str
    accession_number: str
    nhs_number: str
    patient_name: str
    birth_date: str
    sex: str
    study_description: str

    @classmethod
    def of(cls, ds: Dataset) -> HeldIdentity:
        return cls(
            patient_id=text(ds, "PatientID")[:64],
            issuer=text(ds, "IssuerOfPatientID")[:64],
            accession_number=text(ds, "AccessionNumber")[:16],
            nhs_number=nhs_number_of(ds),
            patient_name=person_name(ds)[:200],
            birth_date=text(ds, "PatientBirthDate")[:8],
            sex=text(ds, "PatientSex")[:16],
            study_description=text(ds, "StudyDescription")[:64],
        )

    def fields(self) -> dict[str, str]:
        return dict(self.__dict__)


def _identity(path: Path) -> HeldIdentity:
    return HeldIdentity.of(dcmread(path, stop_before_pixels=True))


def transfer_via(transfer: Transfer) -> str:
    """Push, or a request's (pull's) approved transfer: asked through the reverse relation, since pulls sits
    above this app."""
    return Via.PULL if Transfer.objects.filter(pk=transfer.pk, pull_request__isnull=False).exists() else Via.PUSH


def copies_note_batch(transfer: Transfer, items: list[RetrievedInstance], *, via: str) -> None:
    """The engine is about to store `items` at the transfer's destination: note each as a copy on its way,
    with the identity its bytes carry (read once per study of the batch)."""
    identities: dict[str, HeldIdentity] = {}
    rows = []
    for item in items:
        if item.study_instance_uid not in identities:
            identities[item.study_instance_uid] = _identity(item.path)
        rows.append(
            _copy(
                transfer,
                via=via,
                study=item.study_instance_uid,
                series=item.series_instance_uid,
                sop=item.sop_instance_uid,
                sop_class=item.sop_class_uid,
                identity=identities[item.study_instance_uid],
            )
        )
    Copy.objects.bulk_create(rows, ignore_conflicts=True)


def copies_note_files(transfer: Transfer, paths: Iterable[Path], *, via: str = Via.FORWARD) -> None:
    """Files about to be stored at the transfer's destination outside the engine (a reconciled study's
    forward): noted like a batch, each file read for its UIDs and identity."""
    rows = []
    for path in paths:
        ds = dcmread(path, stop_before_pixels=True)
        rows.append(
            _copy(
                transfer,
                via=via,
                study=text(ds, "StudyInstanceUID"),
                series=text(ds, "SeriesInstanceUID"),
                sop=text(ds, "SOPInstanceUID"),
                sop_class=text(ds, "SOPClassUID"),
                identity=HeldIdentity.of(ds),
            )
        )
    # A forward after a resolution files under the chosen patient: what was noted before it is replaced.
    Copy.objects.filter(transfer=transfer, sop_instance_uid__in=[r.sop_instance_uid for r in rows]).filter(
        state=CopyState.SENDING
    ).delete()
    Copy.objects.bulk_create(rows, ignore_conflicts=True)


def _copy(transfer: Transfer, *, via: str, study: str, series: str, sop: str, sop_class: str, identity) -> Copy:
    return Copy(
        holder_id=transfer.destination_id,
        gateway_id=transfer.destination_gateway_id,
        source_id=transfer.source_id,
        transfer=transfer,
        via=via,
        state=CopyState.SENDING,
        study_instance_uid=study,
        series_instance_uid=series,
        sop_instance_uid=sop,
        sop_class_uid=sop_class,
        **identity.fields(),
    )


def copies_confirm_transfer(transfer_id: int) -> int:
    """The transfer has ended: what its ledger says the destination stored becomes a copy held there, since
    the ledger's time of storing, with the hash of the bytes sent. Returns how many became copies."""
    stored = TransferInstance.objects.filter(
        transfer_id=transfer_id, state=InstanceState.STORED, sop_instance_uid=OuterRef("sop_instance_uid")
    )
    return (
        Copy.objects.filter(transfer_id=transfer_id, state=CopyState.SENDING)
        .filter(Exists(stored))
        .update(
            state=CopyState.HELD,
            stored_at=Subquery(stored.values("updated_at")[:1]),
            sha256=Subquery(stored.values("sha256")[:1]),
        )
    )


def copies_record_files(*, holder: Trust, gateway: Gateway, source: Trust, paths: Iterable[Path], via: str) -> int:
    """Documents the portal itself stored at a PACS (a second opinion's SR filed at the source), already
    confirmed by the PACS: copies held from now."""
    now = timezone.now()
    rows = []
    for path in paths:
        ds = dcmread(path, stop_before_pixels=True)
        rows.append(
            Copy(
                holder=holder,
                gateway=gateway,
                source=source,
                via=via,
                state=CopyState.HELD,
                stored_at=now,
                study_instance_uid=text(ds, "StudyInstanceUID"),
                series_instance_uid=text(ds, "SeriesInstanceUID"),
                sop_instance_uid=text(ds, "SOPInstanceUID"),
                sop_class_uid=text(ds, "SOPClassUID"),
                **HeldIdentity.of(ds).fields(),
            )
        )
    return len(Copy.objects.bulk_create(rows, ignore_conflicts=True))


def on_transfer_ended(sender: Any, transfer_id: int, **kwargs: Any) -> None:
    """transfers.signals.transfer_recorded receiver: inside the transaction that ends the transfer."""
    copies_confirm_transfer(transfer_id)


# --- corrections: the source's act -----------------------------------------------------------------

IDENTITY_FIELDS = ("patient_id", "issuer", "patient_name", "birth_date", "sex", "nhs_number")


def _actor(user: Any, actor: Actor | None) -> Actor:
    return actor or Actor(type=ActorType.USER, user_id=user.pk, label=user.email)


def _clean_identity(corrected: dict[str, Any]) -> dict[str, str]:
    from dicomkit import nhs

    unknown = sorted(set(corrected) - set(IDENTITY_FIELDS))
    if unknown:
        raise ValidationError({"corrected": f"Unknown fields: {', '.join(unknown)}."})
    clean = {k: str(v or "").strip() for k, v in corrected.items() if str(v or "").strip()}
    if not clean:
        raise ValidationError({"corrected": "Give at least one corrected field of the patient's identity."})
    for key, value in clean.items():
        if "\\" in value or any(ord(c) < 32 for c in value) or len(value) > 64:
            raise ValidationError({"corrected": f"{key}: at most 64 characters, no backslashes or control characters."})
    if "birth_date" in clean:
        clean["birth_date"] = clean["birth_date"].replace("-", "")
        if len(clean["birth_date"]) != 8 or not clean["birth_date"].isdigit():
            raise ValidationError({"corrected": "birth_date: a date, YYYY-MM-DD."})
    if "sex" in clean and clean["sex"] not in ("M", "F", "O"):
        raise ValidationError({"corrected": "sex: M, F or O."})
    if "nhs_number" in clean:
        number = clean["nhs_number"].replace(" ", "")
        if not nhs.is_valid(number):
            raise ValidationError({"corrected": "nhs_number: not a valid NHS number."})
        clean["nhs_number"] = number
    return clean


@transaction.atomic
def correction_create(
    *,
    user: Any,
    source: Trust,
    study_instance_uid: str,
    kind: str,
    reason: str = "",
    comment: str = "",
    series_instance_uids: list[str] | None = None,
    sop_instance_uids: list[str] | None = None,
    corrected: dict[str, Any] | None = None,
    actor: Actor | None = None,
) -> Correction:
    """The source's imaging manager rejects (part of) a study it sent, or corrects its patient's identity.
    Every copy it names is marked, every holder gets a delivery (sent by a task once this commits), and the
    act is on the audit trail (110103 deletion for a rejection, 110110 Patient Record update for identity)."""
    if not perms.has_perm_at(user, perms.Perm.MANAGE_TRANSFERS, source.pk):
        raise PermissionDenied(f"Only imaging managers of {source.ods_code} may correct studies it sent.")
    if kind not in CorrectionKind.values:
        raise ValidationError({"kind": f"Choose from {', '.join(CorrectionKind.values)}."})
    reason = reason or (RejectionReason.WORKLIST if kind == CorrectionKind.IDENTITY else "")
    if reason not in RejectionReason.values:
        raise ValidationError({"reason": f"Choose a rejection reason: {', '.join(RejectionReason.values)}."})
    clean = _clean_identity(corrected or {}) if kind == CorrectionKind.IDENTITY else {}
    series, sops = list(series_instance_uids or []), list(sop_instance_uids or [])
    copies = Copy.objects.select_for_update().filter(
        source=source, study_instance_uid=study_instance_uid, state=CopyState.HELD
    )
    if series:
        copies = copies.filter(series_instance_uid__in=series)
    if sops:
        copies = copies.filter(sop_instance_uid__in=sops)
    named = list(copies)
    if not named:
        raise ValidationError({"detail": "No trust holds a copy of that, sent from here through the portal."})
    correction = Correction.objects.create(
        source=source,
        kind=kind,
        reason=reason,
        comment=comment.strip()[:2000],
        study_instance_uid=study_instance_uid,
        series_instance_uids=series,
        sop_instance_uids=sops,
        corrected=clean,
        nhs_number=named[0].nhs_number,
        created_by=user,
    )
    holders: dict[tuple[int, int], int] = {}
    for copy in named:
        key = (copy.holder_id, copy.gateway_id)
        holders[key] = holders.get(key, 0) + 1
    deliveries = CorrectionDelivery.objects.bulk_create(
        [
            CorrectionDelivery(correction=correction, holder_id=h, gateway_id=g, instances=n)
            for (h, g), n in sorted(holders.items())
        ]
    )
    Copy.objects.filter(pk__in=[c.pk for c in named]).update(
        state=CopyState.REJECTED if kind == CorrectionKind.REJECTION else CopyState.CORRECTED
    )
    spec = catalogue.STUDY_REJECTED if kind == CorrectionKind.REJECTION else catalogue.IDENTITY_CORRECTED
    holder_codes = sorted(set(Trust.objects.filter(pk__in={h for h, _ in holders}).values_list("ods_code", flat=True)))
    spec.record(
        actor=_actor(user, actor),
        trust=source.ods_code,
        nhs_number=correction.nhs_number,
        patient_id=named[0].patient_id,
        study_uids=[study_instance_uid],
        reason=comment.strip()[:500] or RejectionReason(reason).label,
        detail={
            "correction": correction.pk,
            "kind": kind,
            "reason_code": reason,
            "instances": len(named),
            "holders": holder_codes,
            **({"corrected": sorted(clean)} if clean else {}),
        },
    )
    for delivery in deliveries:
        enqueue_after_commit(tasks.deliver_correction, delivery.pk, queue="routine")
    return correction


# --- corrections: delivery to a holder --------------------------------------------------------------


def correction_dir(delivery_id: int) -> Path:
    return Path(settings.SPOOL_DIR) / "corrections" / str(delivery_id)


def _named_copies(delivery: CorrectionDelivery) -> list[Copy]:
    correction = delivery.correction
    copies = Copy.objects.filter(
        source_id=correction.source_id,
        holder_id=delivery.holder_id,
        gateway_id=delivery.gateway_id,
        study_instance_uid=correction.study_instance_uid,
        state__in=(CopyState.REJECTED, CopyState.CORRECTED),
    )
    if correction.series_instance_uids:
        copies = copies.filter(series_instance_uid__in=correction.series_instance_uids)
    if correction.sop_instance_uids:
        copies = copies.filter(sop_instance_uid__in=correction.sop_instance_uids)
    seen: dict[str, Copy] = {}
    for copy in copies.order_by("sop_instance_uid", "-stored_at"):
        seen.setdefault(copy.sop_instance_uid, copy)
    return list(seen.values())


def rejection_note_for(delivery: CorrectionDelivery) -> Path:
    """The delivery's note, written once with fixed UIDs: a retry sends the same document."""
    if not delivery.note_sop_instance_uid:
        CorrectionDelivery.objects.filter(pk=delivery.pk, note_sop_instance_uid="").update(
            note_sop_instance_uid=generate_uid()
        )
        delivery.refresh_from_db(fields=["note_sop_instance_uid"])
    path = correction_dir(delivery.pk) / f"{delivery.note_sop_instance_uid}.dcm"
    if path.exists():
        return path
    copies = _named_copies(delivery)
    first, correction = copies[0], delivery.correction
    note = rejection.rejection_note(
        study_instance_uid=correction.study_instance_uid,
        patient=rejection.NotePatient(
            patient_id=first.patient_id,
            issuer=first.issuer,
            patient_name=first.patient_name,
            birth_date=first.birth_date,
            sex=first.sex,
            accession_number=first.accession_number,
        ),
        reason=correction.reason,
        instances=[rejection.Referenced(c.series_instance_uid, c.sop_instance_uid, c.sop_class_uid) for c in copies],
        sop_instance_uid=delivery.note_sop_instance_uid,
        series_instance_uid=delivery.note_sop_instance_uid + ".1"
        if len(delivery.note_sop_instance_uid) < 62
        else generate_uid(),
        when=correction.created_at,
        comment=correction.comment,
        institution=correction.source.name,
    )
    return rejection.write(note, path)


def correction_deliver(delivery_id: int, client: GatewayClient) -> str:
    """Send the rejection note to the holder's gateway (C-STORE or STOW-RS, as it is configured). Raises
    GatewayError (see `.permanent`) for the task's retry policy; records success with 110104."""
    delivery = CorrectionDelivery.objects.select_related("correction__source", "holder", "gateway").get(pk=delivery_id)
    if delivery.state == DeliveryState.SENT:
        return DeliveryState.SENT
    CorrectionDelivery.objects.filter(pk=delivery_id).update(attempts=delivery.attempts + 1)
    path = rejection_note_for(delivery)
    results = client.store([path])
    refused = [r for r in results if not r.ok]
    if refused:
        message = "; ".join(f"{r.message or r.status}" for r in refused)
        raise GatewayError(
            f"{delivery.gateway.name} refused the rejection note: {message}", permanent=refused[0].permanent
        )
    correction = delivery.correction
    corrected = 0
    if correction.kind == CorrectionKind.IDENTITY and agreement_sends_corrected(
        correction.source_id, delivery.holder_id
    ):
        corrected = send_corrected(delivery, client)
    with transaction.atomic():
        CorrectionDelivery.objects.filter(pk=delivery_id).update(
            state=DeliveryState.SENT, sent_at=timezone.now(), last_error="", corrected_sent=corrected
        )
        catalogue.CORRECTION_DELIVERED.record(
            actor=ACTOR,
            trust=correction.source.ods_code,
            peer_trust=delivery.holder.ods_code,
            nhs_number=correction.nhs_number,
            study_uids=[correction.study_instance_uid],
            detail={
                "correction": correction.pk,
                "delivery": delivery.pk,
                "kind": correction.kind,
                "reason_code": correction.reason,
                "note": delivery.note_sop_instance_uid,
                "instances": delivery.instances,
                "corrected_sent": corrected,
                "gateway": delivery.gateway.name,
            },
        )
    shutil.rmtree(correction_dir(delivery.pk), ignore_errors=True)
    return DeliveryState.SENT


def send_corrected(delivery: CorrectionDelivery, client: GatewayClient) -> int:
    """For an identity correction, where the agreement allows: the holder's own copies, retrieved from its
    gateway, corrected (rejection.corrected_copy: new SOP and Series UIDs, the Study UID kept) and stored there
    beside the note that rejects the old ones; each goes on the register. Returns how many were stored."""
    correction = delivery.correction
    copies = {c.sop_instance_uid: c for c in _named_copies(delivery)}
    folder = correction_dir(delivery.pk) / "corrected"
    retrieval = client.retrieve(correction.study_instance_uid, sop_uids=sorted(copies), spool_dir=folder / "in")
    try:
        got = list(retrieval)
    finally:
        retrieval.close()
    change = rejection.CorrectedIdentity(**{k: v for k, v in correction.corrected.items() if k in IDENTITY_FIELDS})
    paths = []
    for item in got:
        copy = copies.get(item.sop_instance_uid)
        if copy is None:
            continue
        ds = dcmread(item.path)
        # A copy filed under the holder's own MRN keeps it: only the source's own patient ID is the source's to correct.
        own = copy.issuer == correction.source.patient_id_issuer or not copy.issuer
        rejection.corrected_copy(ds, change, salt=delivery.note_sop_instance_uid, replace_patient_id=own)
        paths.append(rejection.write(ds, folder / f"{ds.SOPInstanceUID}.dcm"))
        item.path.unlink(missing_ok=True)
    results = client.store(paths)
    refused = [r for r in results if not r.ok]
    if refused:
        raise GatewayError(
            f"{delivery.gateway.name} refused corrected instances: {refused[0].message or refused[0].status}",
            permanent=refused[0].permanent,
        )
    copies_record_files(
        holder=delivery.holder, gateway=delivery.gateway, source=correction.source, paths=paths, via=Via.CORRECTION
    )
    return len(paths)


def correction_delivery_note(delivery_id: int, error: str) -> None:
    """A transient error (the holder's gateway is down): the register says why it has not arrived yet."""
    CorrectionDelivery.objects.filter(pk=delivery_id).exclude(state=DeliveryState.SENT).update(last_error=error[:2000])


def correction_delivery_failed(delivery_id: int, reason: str) -> None:
    """Gave up (a permanent refusal, or the retry window passed): failed with the reason; a person may send
    it again (correction_resend)."""
    log.warning("correction_delivery_failed", delivery_id=delivery_id, reason=reason)
    CorrectionDelivery.objects.filter(pk=delivery_id).exclude(state=DeliveryState.SENT).update(
        state=DeliveryState.FAILED, last_error=reason[:2000]
    )


@transaction.atomic
def correction_resend(*, user: Any, delivery: CorrectionDelivery) -> CorrectionDelivery:
    """The source's imaging manager sends a failed delivery again (a new retry window)."""
    delivery = CorrectionDelivery.objects.select_for_update().select_related("correction").get(pk=delivery.pk)
    if not perms.has_perm_at(user, perms.Perm.MANAGE_TRANSFERS, delivery.correction.source_id):
        raise PermissionDenied("Only the source's imaging managers may send a correction again.")
    if delivery.state != DeliveryState.FAILED:
        raise ValidationError({"detail": "Only a failed delivery is sent again."})
    delivery.state = DeliveryState.PENDING
    delivery.save(update_fields=["state"])
    enqueue_after_commit(tasks.deliver_correction, delivery.pk, queue="routine")
    return delivery


@transaction.atomic
def correction_acknowledge(
    *, user: Any, delivery: CorrectionDelivery, actor: Actor | None = None
) -> CorrectionDelivery:
    """The holder's imaging manager has seen the correction (and acted on it in their PACS)."""
    delivery = (
        CorrectionDelivery.objects.select_for_update()
        .select_related("correction__source", "holder")
        .get(pk=delivery.pk)
    )
    if not perms.may_reconcile_at(user, delivery.holder_id):
        raise PermissionDenied(f"Only imaging managers of {delivery.holder.ods_code} may acknowledge it.")
    if delivery.acknowledged_at is not None:
        return delivery
    delivery.acknowledged_by, delivery.acknowledged_at = user, timezone.now()
    delivery.save(update_fields=["acknowledged_by", "acknowledged_at"])
    correction = delivery.correction
    catalogue.CORRECTION_ACKNOWLEDGED.record(
        actor=_actor(user, actor),
        trust=delivery.holder.ods_code,
        peer_trust=correction.source.ods_code,
        nhs_number=correction.nhs_number,
        study_uids=[correction.study_instance_uid],
        detail={"correction": correction.pk, "delivery": delivery.pk, "kind": correction.kind},
    )
    return delivery


def agreement_sends_corrected(source_id: int, holder_id: int) -> bool:
    agreement = SharingAgreement.between(source_id, holder_id)
    return bool(agreement and agreement.send_corrected_instances)


def copies_read(
    *, user: Any, request: Any = None, study_instance_uid: str = "", nhs_number: str = "", holder: str = ""
):
    """The register's answer for a study or a patient, put on the audit trail (it names patients)."""
    from . import selectors

    if not (study_instance_uid or nhs_number):
        raise ValidationError({"detail": "Name a study (study_instance_uid) or a patient (nhs_number)."})
    found = selectors.holdings(user, study_instance_uid=study_instance_uid, nhs_number=nhs_number, holder=holder)
    trusts = sorted({h.holder for h in found} | {h.source for h in found})
    catalogue.COPIES_LISTED.record(
        request=request,
        actor=None if request is not None else _actor(user, None),
        trust=trusts[0] if trusts else "",
        trusts=trusts[1:],
        nhs_number=nhs_number or (found[0].nhs_number if found else ""),
        study_uids=sorted({h.study_instance_uid for h in found})[:50],
        detail={
            "query": {"study": study_instance_uid, "nhs_number": nhs_number, "holder": holder},
            "found": len(found),
        },
    )
    return found
