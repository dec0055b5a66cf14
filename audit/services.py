"""The one function every part of the portal calls to record an audit event, and the chain verifier.

How to record (for every workflow, present and future)
-------------------------------------------------------
Call `record_event` inside the transaction of the change it describes, late in that transaction (it
holds the chain head's row lock until commit, so every other audit writer waits behind it). Prefer the
named specs in `audit.catalogue` (`catalogue.STUDY_VIEWED.record(request=..., trust=..., ...)`): they fix
the event ID, action and type a workflow uses and refuse a call that leaves out what the IG console and
the alert rules need (the trust, the patient, the studies, the stated reason).

* `trust`: the trust whose images or configuration the event is about (a transfer's source).
* `peer_trust`: the other trust involved (the destination; the requesting trust of a pull).
* `nhs_number` (10 digits, spaces allowed), `patient_id` (the local MRN; put its issuer in detail),
  `study_uids`: the patient and studies. The patient access report finds events by these.
* `reason`: the clinical reason the user stated. Mandatory for emergency access (110113/110127).
* `actor`: from `audit.context` (`actor_from_request`, `share_link_actor`, `system_actor`), or pass
  `request=` and the actor is read from it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from .codes import Action, ActorType, EventID, EventType, Outcome
from .context import SYSTEM, Actor, actor_from_request
from .models import ALL_HASHED_FIELDS, GENESIS_HASH, AuditEvent, ChainHead, hash_of

_EVENT_IDS = set(EventID.values)
_ACTIONS = set(Action.values)
_OUTCOMES = set(Outcome.values)


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
    peer_trust: str = "",
    trusts: Iterable[str] = (),
    subject_user: Any = None,
) -> AuditEvent:
    """Append one event to the chain, inside the caller's transaction (a rollback takes it back too).

    `trusts` adds further trusts whose IG officers should see the event; `subject_user` names the
    member of staff an event is about when they are not the actor (an account change), so their
    trusts see it too.

    The chain head row is locked before it is read (SELECT ... FOR UPDATE on PostgreSQL; SQLite's
    IMMEDIATE transactions hold the database's one write lock), so concurrent writers queue on it and
    the chain can neither fork nor skip a number. The head then moves one step, onto the new event: the
    only move PostgreSQL's guard (migration 0005) lets anyone make.
    """
    if actor is None:
        actor = actor_from_request(request) if request is not None else SYSTEM
    fields = _validated(
        event_id=str(event_id),
        action=str(action),
        outcome=int(outcome),
        event_type=str(event_type),
        nhs_number=nhs_number,
        reason=reason,
    )
    trust, peer_trust = _ods(trust), _ods(peer_trust)
    detail = _jsonable(detail or {})
    scope = _scope(trust, peer_trust, trusts, actor, subject_user, detail)
    with transaction.atomic():
        head = _locked_head()
        event = AuditEvent(
            seq=head.seq + 1,
            timestamp=timezone.now(),
            actor_type=actor.type,
            actor_user_id=actor.user_id,
            actor_label=_text(actor.label)[:254],
            actor_ref=_text(actor.ref)[:64],
            trust=trust,
            peer_trust=peer_trust,
            scope=scope,
            patient_id=_text(patient_id)[:64],
            study_uids=sorted({_text(uid) for uid in study_uids if uid}),
            client_ip=actor.client_ip,
            user_agent=_text(actor.user_agent)[:512],
            request_id=_text(actor.request_id)[:64],
            detail=detail,
            prev_hash=head.hash,
            **fields,
        )
        event.hash = event.compute_hash()
        event.save(force_insert=True)
        ChainHead.objects.filter(pk=1).update(seq=event.seq, hash=event.hash)
    return event


def _locked_head() -> ChainHead:
    head = ChainHead.objects.select_for_update().filter(pk=1).first()
    if head is None:
        # First event ever (or a freshly flushed test database). Two first writers may race to create
        # the row; the loser's insert fails inside its savepoint and it queues on the winner's lock.
        try:
            with transaction.atomic():
                ChainHead.objects.create(pk=1, seq=0, hash=GENESIS_HASH)
        except IntegrityError:
            pass
        head = ChainHead.objects.select_for_update().get(pk=1)
    return head


def _validated(*, event_id: str, action: str, outcome: int, event_type: str, nhs_number: str, reason: str) -> dict:
    if event_id not in _EVENT_IDS:
        raise ValueError(f"{event_id!r} is not a PS3.15 audit event ID the portal records (SPEC section 4).")
    if action not in _ACTIONS:
        raise ValueError(f"{action!r} is not an event action code (C, R, U, D or E).")
    if outcome not in _OUTCOMES:
        raise ValueError(f"{outcome!r} is not an event outcome (0, 4, 8 or 12).")
    if len(event_type) > 6:
        raise ValueError(f"{event_type!r} is not an event type code (six characters at most).")
    reason = _text(reason).strip()
    if event_type == EventType.EMERGENCY_OVERRIDE_STARTED and not reason:
        raise ValueError("Emergency access (110127) must carry the reason the user stated.")
    digits = "".join(ch for ch in str(nhs_number or "") if ch not in " -")
    if digits and (len(digits) != 10 or not digits.isdigit()):
        raise ValueError(f"{nhs_number!r} is not an NHS number (10 digits).")
    return {
        "event_id": event_id,
        "action": action,
        "outcome": outcome,
        "event_type": event_type,
        "nhs_number": digits,
        "reason": reason,
    }


def _ods(code: str) -> str:
    code = str(code or "").strip().upper()
    if len(code) > 5:
        raise ValueError(f"{code!r} is not an ODS code.")
    return code


def _text(value: object) -> str:
    # PostgreSQL text cannot hold NUL; a header or a typed reason could.
    return str(value or "").replace("\x00", "")


def _jsonable(value: Any) -> Any:
    """Detail as the database will hand it back, so the hash computed now is the hash verified later."""

    def clean(item: Any) -> Any:
        if isinstance(item, dict):
            return {_text(k): clean(v) for k, v in item.items()}
        if isinstance(item, list | tuple | set | frozenset):
            return [clean(v) for v in item]
        if isinstance(item, float):
            if not math.isfinite(item):
                return str(item)
            # jsonb prints large integral floats as integers: store them that way from the start.
            return int(item) if item.is_integer() and abs(item) >= 1e15 else item
        if isinstance(item, str):
            return _text(item)
        return item

    return clean(json.loads(json.dumps(value, default=str)))


def _scope(trust: str, peer_trust: str, extra: Iterable[str], actor: Actor, subject_user: Any, detail: dict) -> list:
    scope = {trust, peer_trust, *(_ods(code) for code in extra)} - {""}
    if scope:
        return sorted(scope)
    # An event about no trust (signing in, an account change) belongs to the trusts of the people in it.
    user_ids: set[int] = set()
    if actor.user_id:
        user_ids.add(actor.user_id)
    subject = getattr(subject_user, "pk", subject_user)
    if subject:
        user_ids.add(int(subject))
    emails = {str(detail.get(key, "")).lower() for key in ("user", "attempted_email")} - {""}
    return sorted(member_trusts(user_ids, emails))


def member_trusts(user_ids: set[int], emails: set[str]) -> set[str]:
    if not user_ids and not emails:
        return set()
    from django.db.models import Q

    membership = apps.get_model("accounts", "Membership")
    who = Q(user_id__in=user_ids) | Q(user__email__in=emails)
    # A regional administrator's membership names a trust only nominally: it is not theirs to be seen by.
    rows = membership.objects.filter(who).exclude(role="regional_admin").values_list("trust__ods_code", flat=True)
    return set(rows)


# --- verification ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    events_checked: int
    first_broken_seq: int | None = None
    problem: str = ""
    head_seq: int = 0
    head_hash: str = GENESIS_HASH
    from_seq: int = 1
    # Set by audit.digest.verify_anchored: what the digest files outside the database say besides.
    anchor_problems: tuple[str, ...] = ()
    digests_checked: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events_checked": self.events_checked,
            "first_broken_seq": self.first_broken_seq,
            "problem": self.problem,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "from_seq": self.from_seq,
            "digest_problems": list(self.anchor_problems),
            "digests_checked": self.digests_checked,
        }


def _rows(start: int, stop: int, batch_size: int) -> Iterator[dict[str, Any]]:
    """Rows start..stop in seq order, fetched in keyset batches (no long-lived cursor on a huge table)."""
    names = [*ALL_HASHED_FIELDS, "hash"]
    after = start - 1
    while True:
        batch = list(
            AuditEvent.objects.filter(seq__gt=after, seq__lte=stop).order_by("seq").values(*names)[:batch_size]
        )
        yield from batch
        if len(batch) < batch_size:
            return
        after = batch[-1]["seq"]


def verify_chain(*, from_seq: int = 1, batch_size: int = 5000) -> ChainReport:
    """Walk the chain in order; report the first row whose content, position or link does not hold.

    Changing any hashed field, deleting a row, or swapping rows' positions all break the walk: each row's
    hash covers its own seq and its predecessor's hash. Deleting the newest rows is caught against the
    chain head, and rewriting the head too is caught by comparing with an exported digest
    (`verify_digest`). `from_seq` resumes from a trusted point (the last digest) to keep the daily check
    short; the row before it must still hold together.
    """
    head = ChainHead.objects.filter(pk=1).values("seq", "hash").first()
    if head is None:
        newest = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first()
        if newest is not None:
            return ChainReport(False, 0, 1, "the chain head is missing", head_seq=0, from_seq=from_seq)
        head = {"seq": 0, "hash": GENESIS_HASH}
    start = max(int(from_seq), 1)
    if start > head["seq"] + 1:
        start = head["seq"] + 1
    broken_at, problem, checked, last_hash, last_seq = _walk(start, head["seq"], batch_size)
    if broken_at is None and AuditEvent.objects.filter(seq__gt=head["seq"]).exists():
        # The walk stops at the head; rows past it were hidden by moving the head back, or forged.
        broken_at, problem = head["seq"] + 1, f"there are events after the chain head (#{head['seq']})"
    elif broken_at is None and last_seq != head["seq"]:
        broken_at, problem = last_seq + 1, f"the chain ends at #{last_seq} but the head says #{head['seq']}"
    elif broken_at is None and last_hash != head["hash"]:
        broken_at, problem = last_seq, f"the chain head does not match event #{last_seq}"
    return ChainReport(
        ok=broken_at is None,
        events_checked=checked,
        first_broken_seq=broken_at,
        problem=problem,
        head_seq=head["seq"],
        head_hash=head["hash"],
        from_seq=start,
    )


def _walk(start: int, stop: int, batch_size: int) -> tuple[int | None, str, int, str, int]:
    expected_seq, expected_prev, checked = start, GENESIS_HASH, 0
    if start > 1:
        anchor = AuditEvent.objects.filter(seq=start - 1).values(*ALL_HASHED_FIELDS, "hash").first()
        if anchor is None:
            return start - 1, f"event #{start - 1} is missing", 0, GENESIS_HASH, start - 1
        if hash_of(anchor) != anchor["hash"]:
            return start - 1, f"event #{start - 1} was altered after it was written", 0, GENESIS_HASH, start - 1
        expected_prev = anchor["hash"]
    for row in _rows(start, stop, batch_size):
        if row["seq"] != expected_seq:
            return expected_seq, f"event #{expected_seq} is missing", checked, expected_prev, expected_seq - 1
        if row["prev_hash"] != expected_prev:
            return (
                row["seq"],
                f"event #{row['seq']} does not follow its predecessor",
                checked,
                expected_prev,
                row["seq"],
            )
        if hash_of(row) != row["hash"]:
            return (
                row["seq"],
                f"event #{row['seq']} was altered after it was written",
                checked,
                expected_prev,
                row["seq"],
            )
        expected_prev, expected_seq, checked = row["hash"], expected_seq + 1, checked + 1
    return None, "", checked, expected_prev, expected_seq - 1


def is_user_actor(event: AuditEvent) -> bool:
    return event.actor_type in (ActorType.USER, ActorType.API_TOKEN) and event.actor_user_id is not None
