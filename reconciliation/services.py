"""Reconciliation on arrival: decide once per study how it is filed at the destination, rewrite or hold
its instances, and, when an imaging manager resolves a held study, forward it under the chosen patient.

Nothing is filed against a guessed patient: only exactly one local patient with the NHS number and the
same birth date is a match; anything else waits in the queue (on disk, fsynced) for a person.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts import permissions as perms
from audit import catalogue
from audit.codes import ActorType
from audit.context import Actor, system_actor
from copies import services as copies_services
from dicomkit import GatewayClient, RetrievedInstance, StudyQuery
from dicomkit.identity import NHS_ISSUER
from dicomkit.spool import sha256_of
from directory.models import Trust
from exchange.services import local_identity
from portal.enqueue import enqueue_after_commit
from transfers import completion
from transfers.engine import ledger
from transfers.models import InstanceState, Status, Transfer, TransferInstance

from . import rewrite, tasks
from .models import HoldReason, StudyReconciliation
from .models import Outcome as Filed

ACTOR = system_actor("reconciliation on arrival")
_BAD_ID = re.compile(r"[\\\x00-\x1f\x7f]")


def queue_dir(item_id: int) -> Path:
    return Path(settings.SPOOL_DIR) / "reconciliation" / str(item_id)


# --- the decision ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalPatient:
    patient_id: str
    issuer: str
    birth_dates: frozenset[str]
    names: frozenset[str]

    def as_json(self) -> dict[str, Any]:
        return {
            "patient_id": self.patient_id,
            "issuer": self.issuer,
            "birth_dates": sorted(self.birth_dates),
            "names": sorted(self.names),
        }


def _filing_identity(study, issuer: str) -> tuple[str, str] | None:
    """How the destination's PACS keys the patient of a study it holds: its own local ID, or else the NHS
    number when that is the PatientID (issuer NHS). Such a patient is a local patient all the same: the
    hold reason "No local patient has this NHS number" was once given for one the PACS returned."""
    local = local_identity(study, issuer)
    if local is not None:
        return local
    if study.nhs_number and study.patient_id == study.nhs_number:
        return study.nhs_number, NHS_ISSUER
    return None


def find_local_patients(
    client: GatewayClient, *, nhs_number: str, issuer: str, exclude_study: str
) -> list[LocalPatient]:
    """C-FIND / QIDO-RS of the destination's PACS by NHS number, grouped into patients by local MRN."""
    found: dict[tuple[str, str], dict[str, set[str]]] = {}
    for study in client.find_studies(StudyQuery(nhs_number=nhs_number)):
        if study.study_instance_uid == exclude_study:
            continue  # the very study being sent, from an earlier run: not evidence of a local patient
        local = _filing_identity(study, issuer)
        if local is None:
            continue
        entry = found.setdefault(local, {"birth_dates": set(), "names": set()})
        if study.birth_date:
            entry["birth_dates"].add(study.birth_date)
        if study.patient_name:
            entry["names"].add(study.patient_name)
    return [
        LocalPatient(pid, iss, frozenset(v["birth_dates"]), frozenset(v["names"]))
        for (pid, iss), v in sorted(found.items())
    ]


def _decide(transfer: Transfer, client: GatewayClient, study_uid: str, sample: Path) -> dict[str, Any]:
    """Fields of the study's reconciliation row: matched, unchanged, or held with a reason."""
    destination: Trust = transfer.destination
    source = rewrite.read_identity(sample)
    fields: dict[str, Any] = {
        "nhs_number": source.nhs_number,
        "patient_name": source.patient_name[:200],
        "birth_date": source.birth_date[:8],
        "sex": source.sex[:16],
        "source_patient_id": source.patient_id[:64],
        "source_issuer": source.issuer[:64],
    }
    if not destination.reconcile_patient_id:
        return {**fields, "outcome": Filed.UNCHANGED}
    if not source.nhs_number:
        return {**fields, "outcome": Filed.HELD, "hold_reason": HoldReason.NO_NHS_NUMBER}
    patients = find_local_patients(
        client, nhs_number=source.nhs_number, issuer=destination.patient_id_issuer, exclude_study=study_uid
    )
    fields["candidates"] = [p.as_json() for p in patients]
    if not patients:
        return {**fields, "outcome": Filed.HELD, "hold_reason": HoldReason.NO_MATCH}
    if len(patients) > 1:
        return {**fields, "outcome": Filed.HELD, "hold_reason": HoldReason.SEVERAL_MATCHES}
    patient = patients[0]
    if not source.birth_date or not patient.birth_dates:
        return {**fields, "outcome": Filed.HELD, "hold_reason": HoldReason.BIRTH_DATE_MISSING}
    if patient.birth_dates != {source.birth_date}:
        detail = f"sent {source.birth_date}, held locally {', '.join(sorted(patient.birth_dates))}"
        return {**fields, "outcome": Filed.HELD, "hold_reason": HoldReason.BIRTH_DATE_CONFLICT, "detail": detail}
    return {**fields, "outcome": Filed.MATCHED, "patient_id": patient.patient_id, "issuer": patient.issuer}


def decision_for(transfer: Transfer, client: GatewayClient, study_uid: str, sample: Path) -> StudyReconciliation:
    """The study's decision, made once (a resumed transfer reuses it) and put on the audit trail."""
    existing = StudyReconciliation.objects.filter(transfer=transfer, study_instance_uid=study_uid).first()
    if existing:
        return existing
    fields = _decide(transfer, client, study_uid, sample)
    with transaction.atomic():
        item, created = StudyReconciliation.objects.get_or_create(
            transfer=transfer,
            study_instance_uid=study_uid,
            defaults={"destination": transfer.destination, **fields},
        )
        if created and item.outcome in (Filed.MATCHED, Filed.HELD):
            spec = catalogue.RECONCILED if item.outcome == Filed.MATCHED else catalogue.RECONCILIATION_HELD
            spec.record(
                actor=ACTOR,
                trust=transfer.destination.ods_code,
                peer_trust=transfer.source.ods_code,
                nhs_number=item.nhs_number,
                patient_id=item.patient_id or item.source_patient_id,
                study_uids=[study_uid],
                detail={
                    "transfer": transfer.pk,
                    "reconciliation": item.pk,
                    "outcome": item.outcome,
                    **({"hold_reason": item.hold_reason} if item.hold_reason else {}),
                },
            )
    return item


def rewrite_for(item: StudyReconciliation, transfer: Transfer) -> rewrite.Rewrite:
    destination = transfer.destination
    return rewrite.Rewrite(
        patient_id=item.patient_id if item.outcome in (Filed.MATCHED, Filed.RESOLVED) else None,
        issuer=item.issuer,
        prefix=transfer.source.ods_code,
        prefix_accession=destination.prefix_accession,
        prefix_description=destination.prefix_study_description,
    )


# --- the engine's hooks ---------------------------------------------------------------------------


def prepare_batch(transfer: Transfer, client: GatewayClient, batch: list[RetrievedInstance]) -> list[RetrievedInstance]:
    """Just before a batch is stored: rewrite what may go (the ledger gets the rewritten bytes' hash) and
    move what must wait into the queue's folder, marking it `held`. Returns what to send now."""
    send: list[RetrievedInstance] = []
    by_study: dict[str, list[RetrievedInstance]] = {}
    for item in batch:
        by_study.setdefault(item.study_instance_uid, []).append(item)
    for study_uid, items in by_study.items():
        decision = decision_for(transfer, client, study_uid, items[0].path)
        if decision.outcome == Filed.HELD:
            _hold(transfer, decision, items)
            continue
        change = rewrite_for(decision, transfer)
        if change.changes_anything:
            for item in items:
                rewrite.rewrite_file(item.path, change)
            _record_hashes(transfer, items)
        send.extend(items)
    return send


def _record_hashes(transfer: Transfer, items: list[RetrievedInstance]) -> None:
    ledger.record_sent_bytes(transfer, {item.sop_instance_uid: item.path for item in items})


def _hold(transfer: Transfer, decision: StudyReconciliation, items: list[RetrievedInstance]) -> None:
    folder = queue_dir(decision.pk)
    for item in items:  # safe on disk first; a crash before the ledger update just holds it again
        rewrite.keep_safe(item.path, folder)
    with transaction.atomic():
        rows = list(
            transfer.instances.select_for_update().filter(sop_instance_uid__in=[i.sop_instance_uid for i in items])
        )
        for row in rows:
            row.state, row.last_error = InstanceState.HELD, "waiting in the reconciliation queue"
        TransferInstance.objects.bulk_update(rows, ["state", "last_error", "updated_at"])


def wait_for_reconciliation(transfer: Transfer, owner: str) -> bool:
    """Called where the engine would finish: with instances held, the transfer waits instead (never
    `completed`: held instances have not been sent). True when it now waits."""
    if not transfer.instances.filter(state=InstanceState.HELD).exists():
        return False
    with transaction.atomic():
        locked = Transfer.objects.select_for_update().get(pk=transfer.pk)
        if locked.lease_owner != owner or locked.status in (Status.CANCELLED, Status.FAILED):
            return False  # cancelled meanwhile: the engine's own path reports it
        locked.status = Status.AWAITING_RECONCILIATION
        locked.first_transient_error_at, locked.transient_failures = None, 0
        locked.save(update_fields=["status", "first_transient_error_at", "transient_failures"])
    # A study resolved while the engine was still sending has its forward task waiting for this.
    for item_id in StudyReconciliation.objects.filter(transfer=transfer, outcome=Filed.RESOLVED).values_list(
        "pk", flat=True
    ):
        _enqueue_forward(item_id, transfer.queue)
    return True


class ArrivalReconciliation:
    """The engine's stage (transfers.stages) that reconciles each batch on its way to the destination."""

    def prepare_batch(
        self, transfer: Transfer, destination: GatewayClient, batch: list[RetrievedInstance]
    ) -> list[RetrievedInstance]:
        return prepare_batch(transfer, destination, batch)

    def holds_back(self, transfer: Transfer, owner: str) -> bool:
        return wait_for_reconciliation(transfer, owner)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ArrivalReconciliation)

    def __hash__(self) -> int:
        return hash(ArrivalReconciliation)


# --- resolution by an imaging manager -------------------------------------------------------------


def _clean_id(value: str, field: str, *, required: bool) -> str:
    value = (value or "").strip()
    if not value and required:
        raise ValidationError({field: "Required: the local patient ID to file these images under."})
    if len(value) > 64 or _BAD_ID.search(value):
        raise ValidationError({field: "At most 64 characters, without backslashes or control characters."})
    return value


@transaction.atomic
def reconciliation_resolve(
    *,
    item: StudyReconciliation,
    user,
    patient_id: str = "",
    issuer: str = "",
    new_patient: bool = False,
    actor: Actor | None = None,
) -> StudyReconciliation:
    """An imaging manager of the receiving trust names the local patient (or accepts a new one); the held
    instances are then rewritten and forwarded by a task. A new patient without an MRN is filed under the
    NHS number (issuer NHS): the one identity that is certain, never a guess."""
    item = StudyReconciliation.objects.select_for_update().select_related("transfer", "destination").get(pk=item.pk)
    if not perms.may_reconcile_at(user, item.destination_id):
        raise PermissionDenied(f"Only imaging managers of {item.destination.ods_code} may resolve its arrivals.")
    if item.outcome != Filed.HELD:
        raise ValidationError({"detail": f"This arrival is not waiting: {item.get_outcome_display().lower()}."})
    if item.transfer.status in (Status.CANCELLED, Status.FAILED):
        raise ValidationError({"detail": "Its transfer was cancelled or failed; retry the transfer first."})
    patient_id = _clean_id(patient_id, "patient_id", required=not (new_patient and item.nhs_number))
    issuer = _clean_id(issuer, "issuer", required=False)
    if not patient_id:
        patient_id, issuer = item.nhs_number, NHS_ISSUER
    item.patient_id = patient_id
    item.issuer = issuer or item.destination.patient_id_issuer
    item.new_patient = bool(new_patient)
    item.outcome = Filed.RESOLVED
    item.resolved_by = user
    item.resolved_at = timezone.now()
    item.save()
    catalogue.RECONCILED.record(
        actor=actor or Actor(type=ActorType.USER, user_id=user.pk, label=user.email),
        trust=item.destination.ods_code,
        peer_trust=item.transfer.source.ods_code,
        nhs_number=item.nhs_number,
        patient_id=item.patient_id,
        study_uids=[item.study_instance_uid],
        detail={
            "transfer": item.transfer_id,
            "reconciliation": item.pk,
            "outcome": "resolved",
            "issuer": item.issuer,
            "new_patient": item.new_patient,
            "hold_reason": item.hold_reason,
        },
    )
    if item.transfer.status == Status.AWAITING_RECONCILIATION:
        _enqueue_forward(item.pk, item.transfer.queue)
    return item


def _enqueue_forward(item_id: int, queue: str) -> None:
    """Forward a resolved study on its transfer's queue, once the caller's transaction has committed."""
    enqueue_after_commit(tasks.forward_held, item_id, queue=queue)


# --- forwarding what was held ---------------------------------------------------------------------


def reconciliation_forward(item_id: int, client: GatewayClient) -> int:
    """Rewrite the resolved study's held files, store them at the destination, verify, update the ledger
    and, once nothing of the transfer waits any more, finish it. Returns how many were stored.

    Raises GatewayError when the destination cannot take them now (the task retries; files stay)."""
    item = StudyReconciliation.objects.select_related("transfer__source", "transfer__destination").get(pk=item_id)
    transfer = item.transfer
    if item.outcome != Filed.RESOLVED or transfer.status != Status.AWAITING_RECONCILIATION:
        return 0
    folder = queue_dir(item.pk)
    rows = {
        r.sop_instance_uid: r
        for r in transfer.instances.filter(study_instance_uid=item.study_instance_uid, state=InstanceState.HELD)
    }
    paths = [folder / f"{uid}.dcm" for uid in rows]
    missing = [p.stem for p in paths if not p.exists()]
    change = rewrite_for(item, transfer)
    present = [p for p in paths if p.exists()]
    for path in present:
        rewrite.rewrite_file(path, change)
    copies_services.copies_note_files(transfer, present)  # the register: what the holder's copies will carry
    stored: dict[str, tuple[str, int]] = {}
    refused: dict[str, str] = {}
    for start in range(0, len(present), 16):
        chunk = present[start : start + 16]
        for path, result in zip(chunk, client.store(chunk), strict=True):
            if result.ok:
                stored[path.stem] = (sha256_of(path), path.stat().st_size)
            elif result.permanent:
                refused[path.stem] = result.message or "refused by the destination"
            else:
                raise_transient(result.message)
    listed = {i.sop_instance_uid for i in client.find_instances(item.study_instance_uid)}
    with transaction.atomic():
        # Only rows still held: a second run of this task (a redelivery) may have stored and cleared some
        # meanwhile, and its missing files must not turn them into failures.
        locked = list(
            transfer.instances.select_for_update().filter(sop_instance_uid__in=rows, state=InstanceState.HELD)
        )
        for row in locked:
            uid = row.sop_instance_uid
            if uid in stored and uid in listed:
                row.state, row.last_error = InstanceState.STORED, ""
                row.sha256, row.size = stored[uid]
            elif uid in stored:
                row.state = InstanceState.FAILED
                row.last_error = f"{client.config.name} accepted it but does not list it in its index"
            elif uid in refused:
                row.state, row.last_error = InstanceState.FAILED, refused[uid]
            elif uid in missing:
                row.state, row.last_error = InstanceState.FAILED, "its held copy is missing from the queue folder"
        TransferInstance.objects.bulk_update(locked, ["state", "last_error", "sha256", "size", "updated_at"])
        StudyReconciliation.objects.filter(pk=item.pk).update(forwarded_at=timezone.now(), forward_error="")
    for uid in stored:
        if uid in listed:
            (folder / f"{uid}.dcm").unlink(missing_ok=True)
    completion.transfer_complete(transfer.pk)  # once nothing of it waits any more
    return sum(1 for uid in stored if uid in listed)


def reconciliation_forward_note(item_id: int, error: str) -> None:
    """A transient error: the queue page says why the study has not reached the PACS yet; the task retries."""
    StudyReconciliation.objects.filter(pk=item_id).update(forward_error=error[:2000])


def reconciliation_forward_failed(item_id: int, reason: str) -> None:
    """The destination refused for good, or kept failing for the whole retry window: the study's held
    instances fail with the reason (the transfer can be retried from its page), and the transfer ends
    once nothing else of it waits. The held copies stay in the queue folder, as after any failed forward."""
    item = StudyReconciliation.objects.get(pk=item_id)
    with transaction.atomic():
        held = item.transfer.instances.select_for_update().filter(
            study_instance_uid=item.study_instance_uid, state=InstanceState.HELD
        )
        held.update(state=InstanceState.FAILED, last_error=f"not forwarded: {reason}"[:2000])
        StudyReconciliation.objects.filter(pk=item_id).update(forward_error=reason[:2000])
    completion.transfer_complete(item.transfer_id)  # once nothing of it waits any more


def raise_transient(message: str) -> None:
    from dicomkit import GatewayError

    raise GatewayError(message or "the destination refused for now; trying again", permanent=False)


@transaction.atomic
def reconciliation_resolve_many(
    *,
    items: list[StudyReconciliation],
    user,
    patient_id: str = "",
    issuer: str = "",
    new_patient: bool = False,
    actor: Actor | None = None,
) -> list[StudyReconciliation]:
    """One decision for several held studies (the assistant's "every held study of this patient in this
    transfer"): each resolved as if alone, audited alone, all or none."""
    return [
        reconciliation_resolve(
            item=item, user=user, patient_id=patient_id, issuer=issuer, new_patient=new_patient, actor=actor
        )
        for item in items
    ]
