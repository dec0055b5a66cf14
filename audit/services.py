"""The one function every part of the portal calls to record an audit event, and the chain verifier."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone

from .codes import Action, EventID, Outcome
from .context import SYSTEM, Actor, actor_from_request
from .models import GENESIS_HASH, AuditEvent, ChainHead


def record_event(
    *,
    event_id: EventID | str,
    action: Action | str,
    outcome: Outcome | int = Outcome.SUCCESS,
    request: HttpRequest | None = None,
    actor: Actor | None = None,
    event_type: str = "",
    trust: str = "",
    nhs_number: str = "",
    patient_id: str = "",
    study_uids: Iterable[str] = (),
    reason: str = "",
    detail: dict | None = None,
) -> AuditEvent:
    """Append one event to the chain, inside the caller's transaction (a rollback takes it back too).

    The chain head row is updated before it is read, which takes its write lock on every database we
    run on; concurrent writers therefore queue on it and the chain can neither fork nor skip a number.
    """
    if actor is None:
        actor = actor_from_request(request) if request is not None else SYSTEM
    with transaction.atomic():
        if not ChainHead.objects.filter(pk=1).update(seq=F("seq") + 1):
            ChainHead.objects.create(pk=1, seq=1)
        head = ChainHead.objects.get(pk=1)
        event = AuditEvent(
            seq=head.seq,
            timestamp=timezone.now(),
            event_id=str(event_id),
            event_type=str(event_type),
            action=str(action),
            outcome=int(outcome),
            actor_type=actor.type,
            actor_user_id=actor.user_id,
            actor_label=actor.label,
            trust=trust,
            nhs_number=nhs_number,
            patient_id=patient_id,
            study_uids=sorted(set(study_uids)),
            client_ip=actor.client_ip,
            user_agent=actor.user_agent,
            reason=reason,
            detail=detail or {},
            prev_hash=head.hash,
        )
        event.hash = event.compute_hash()
        event.save(force_insert=True)
        ChainHead.objects.filter(pk=1).update(hash=event.hash)
    return event


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    events_checked: int
    first_broken_seq: int | None = None
    problem: str = ""


def verify_chain(*, batch_size: int = 5000) -> ChainReport:
    """Walk the chain in order; report the first row whose content, position or link does not hold."""
    expected_prev, expected_seq, checked = GENESIS_HASH, 1, 0
    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=batch_size):
        if event.seq != expected_seq:
            return ChainReport(False, checked, expected_seq, f"event #{expected_seq} is missing")
        if event.prev_hash != expected_prev:
            return ChainReport(False, checked, event.seq, f"event #{event.seq} does not follow its predecessor")
        if event.compute_hash() != event.hash:
            return ChainReport(False, checked, event.seq, f"event #{event.seq} was altered after it was written")
        expected_prev, expected_seq, checked = event.hash, expected_seq + 1, checked + 1
    head = ChainHead.objects.filter(pk=1).first()
    if head is not None and (head.seq != checked or head.hash != expected_prev):
        return ChainReport(False, checked, checked + 1, f"the chain ends at #{checked} but the head says #{head.seq}")
    return ChainReport(True, checked)
