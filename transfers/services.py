"""Writing transfers: create (push), cancel, retry. Each writes its audit event in its own transaction and
enqueues the engine only once that transaction has committed."""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from accounts import permissions as perms
from audit import catalogue
from audit.codes import Action, ActorType, EventID
from audit.context import Actor
from audit.services import record_event
from directory.models import Gateway, Trust
from directory.services import agreement_allows

from . import completion, tasks
from .models import DELIVERED, FINISHED, RETRYABLE, InstanceState, Priority, Status, Transfer

MAX_STUDIES = 100
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
# C-MOVE sends to the portal's receiver (run_dicom_receiver), which hands each instance to the worker.
RETRIEVE_METHODS = (Gateway.RetrieveMethod.C_GET, Gateway.RetrieveMethod.WADO_RS, Gateway.RetrieveMethod.C_MOVE)


def _actor(user, actor: Actor | None) -> Actor:
    return actor or Actor(type=ActorType.USER, user_id=user.pk, label=user.email)


def _clean_uids(values: Iterable[str]) -> list[str]:
    if isinstance(values, str) or not isinstance(values, list | tuple):
        raise ValidationError({"study_instance_uids": "A list of Study Instance UIDs."})
    uids = list(dict.fromkeys(str(v).strip() for v in values))
    if not uids:
        raise ValidationError({"study_instance_uids": "Name at least one study."})
    if len(uids) > MAX_STUDIES:
        raise ValidationError({"study_instance_uids": f"At most {MAX_STUDIES} studies in one transfer."})
    bad = [uid for uid in uids if len(uid) > 64 or not _UID.match(uid)]
    if bad:
        raise ValidationError({"study_instance_uids": f"Not a DICOM UID: {', '.join(bad[:5])}."})
    return uids


def _gateway(trust: Trust, *, retrieve: bool) -> Gateway:
    gateways = Gateway.objects.filter(trust=trust).order_by("pk")
    if retrieve:
        gateways = gateways.filter(retrieve_method__in=RETRIEVE_METHODS)
    # A gateway that answered its last echo first; one never checked before one known to be down.
    ranked = sorted(gateways, key=lambda g: {"up": 0, "unknown": 1}.get(g.status, 2))
    if not ranked:
        field = "source_trust" if retrieve else "destination_trust"
        what = "it can retrieve from (C-GET, C-MOVE or WADO-RS)" if retrieve else "to send to"
        raise ValidationError({field: f"{trust.ods_code} has no gateway {what}; ask its imaging manager."})
    return ranked[0]


@transaction.atomic
def transfer_create(
    *,
    source: Trust,
    destination: Trust,
    study_instance_uids: Iterable[str],
    priority: str,
    reason: str,
    requested_by,
    actor: Actor | None = None,
    studies: list[dict] | None = None,
) -> Transfer:
    """A push: a clinician of `source` sends studies to `destination` under an active agreement.
    `studies`: what the source's PACS said each study is (exchange.services.study_summaries), kept for
    the pages."""
    if not perms.may_push_from(requested_by, source.pk):
        raise PermissionDenied(f"Only clinicians of {source.ods_code} may send its studies.")
    if source.pk == destination.pk:
        raise ValidationError({"destination_trust": "Source and destination are the same trust."})
    if not agreement_allows(source, destination):
        raise ValidationError(
            {"destination_trust": f"No active sharing agreement lets {source.ods_code} send to {destination.ods_code}."}
        )
    if priority not in Priority.values:
        raise ValidationError({"priority": f"One of {', '.join(Priority.values)}."})
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why these images are needed (it goes on the audit trail)."})
    uids = _clean_uids(study_instance_uids)
    transfer = Transfer.objects.create(
        source=source,
        destination=destination,
        source_gateway=_gateway(source, retrieve=True),
        destination_gateway=_gateway(destination, retrieve=False),
        study_instance_uids=uids,
        priority=priority,
        reason=reason,
        requested_by=requested_by,
        studies=_summaries_of(uids, studies),
    )
    catalogue.PUSH_REQUESTED.record(
        actor=_actor(requested_by, actor),
        trust=source.ods_code,
        peer_trust=destination.ods_code,
        study_uids=uids,
        reason=reason,
        detail={"transfer": transfer.pk, "priority": priority},
    )
    tasks.enqueue(transfer.pk, transfer.queue)  # once this transaction has committed
    return transfer


@transaction.atomic
def transfer_cancel(*, transfer: Transfer, user, actor: Actor | None = None) -> Transfer:
    """Stop a transfer; a running worker notices within one batch and stops sending."""
    transfer = Transfer.objects.select_for_update().get(pk=transfer.pk)
    if not perms.may_manage_transfer(user, transfer):
        raise PermissionDenied("Only whoever asked for this transfer, or an imaging manager, may cancel it.")
    if transfer.status in FINISHED:
        raise ValidationError({"detail": f"The transfer has already ended ({transfer.get_status_display()})."})
    completion.transfer_cancel(transfer)
    _record_change(transfer, user, actor, "cancelled")
    return transfer


@transaction.atomic
def transfer_retry(*, transfer: Transfer, user, actor: Actor | None = None) -> Transfer:
    """Try again what did not arrive; what the ledger marks stored is never sent again."""
    transfer = Transfer.objects.select_for_update().get(pk=transfer.pk)
    if not perms.may_manage_transfer(user, transfer):
        raise PermissionDenied("Only whoever asked for this transfer, or an imaging manager, may retry it.")
    if transfer.status not in RETRYABLE:
        raise ValidationError(
            {
                "detail": f"Only a failed, cancelled or partly sent transfer can be retried, "
                f"not one that is {transfer.get_status_display().lower()}."
            }
        )
    if not agreement_allows(transfer.source, transfer.destination):  # withdrawn since: no more images go
        raise ValidationError(
            {
                "detail": f"No active sharing agreement lets {transfer.source.ods_code} send to "
                f"{transfer.destination.ods_code} any more."
            }
        )
    transfer.instances.exclude(state__in=DELIVERED).update(state=InstanceState.PENDING, attempts=0)
    transfer.status = Status.QUEUED
    transfer.completed_at = None
    transfer.errors = []
    transfer.first_transient_error_at = None
    transfer.transient_failures = 0
    transfer.lease_owner = ""
    transfer.heartbeat_at = None
    transfer.save()
    catalogue.TRANSFER_STARTED.record(
        actor=_actor(user, actor),
        trust=transfer.source.ods_code,
        peer_trust=transfer.destination.ods_code,
        study_uids=transfer.study_instance_uids,
        detail={"transfer": transfer.pk, "retry": True},
    )
    tasks.enqueue(transfer.pk, transfer.queue)  # once this transaction has committed
    return transfer


def _record_change(transfer: Transfer, user, actor: Actor | None, change: str) -> None:
    record_event(
        event_id=EventID.BEGIN_TRANSFERRING,
        action=Action.UPDATE,
        actor=_actor(user, actor),
        trust=transfer.source.ods_code,
        peer_trust=transfer.destination.ods_code,
        study_uids=transfer.study_instance_uids,
        detail={"transfer": transfer.pk, "change": change},
    )


BULK_ACTIONS = {"cancel": transfer_cancel, "retry": transfer_retry}
MAX_BULK = 200


@transaction.atomic
def transfer_bulk_change(*, action: str, transfers: list[Transfer], user, actor: Actor | None = None) -> list[Transfer]:
    """Cancel or retry several transfers: each through its own service (so each is permission-checked and
    audited as if done alone), all or none. If any one may not be changed, nothing is, and the error names
    every transfer that stood in the way."""
    service = BULK_ACTIONS.get(action)
    if service is None:
        raise ValidationError({"action": f"One of {', '.join(BULK_ACTIONS)}."})
    if not transfers:
        raise ValidationError({"transfers": "Choose at least one transfer."})
    if len(transfers) > MAX_BULK:
        raise ValidationError({"transfers": f"At most {MAX_BULK} transfers at once."})
    changed, refused, invalid = [], [], []
    for transfer in transfers:
        try:
            with transaction.atomic():
                changed.append(service(transfer=transfer, user=user, actor=actor))
        except PermissionDenied:
            refused.append(transfer.pk)
        except ValidationError as exc:
            invalid.append(f"{transfer.pk}: {' '.join(exc.messages)}")
    if refused:
        raise PermissionDenied(f"You may not {action} transfers {', '.join(map(str, refused))}; nothing was changed.")
    if invalid:
        raise ValidationError({"transfers": [*invalid, "Nothing was changed."]})
    return changed


def _summaries_of(uids: list[str], studies: list[dict] | None) -> list[dict]:
    """The summaries of exactly these studies, in their order (a summary is display data only)."""
    by_uid = {s.get("study_instance_uid"): s for s in studies or [] if isinstance(s, dict)}
    return [by_uid[uid] for uid in uids if uid in by_uid]


def transfer_create_for_request(
    *,
    source: Trust,
    destination: Trust,
    study_instance_uids: Iterable[str],
    priority: str,
    reason: str,
    requested_by,
    studies: list[dict] | None = None,
) -> Transfer:
    """The transfer an approved request (pulls.services) starts: the caller has checked who approved it and
    records the approval; this checks the agreement and the gateways like a push. `requested_by` is the
    clinician who asked, so they may follow, cancel or retry it."""
    if not agreement_allows(source, destination):
        raise ValidationError(
            {"source_trust": f"No active sharing agreement lets {source.ods_code} send to {destination.ods_code}."}
        )
    uids = _clean_uids(list(study_instance_uids))
    transfer = Transfer.objects.create(
        source=source,
        destination=destination,
        source_gateway=_gateway(source, retrieve=True),
        destination_gateway=_gateway(destination, retrieve=False),
        study_instance_uids=uids,
        priority=priority,
        reason=reason,
        requested_by=requested_by,
        studies=_summaries_of(uids, studies),
    )
    tasks.enqueue(transfer.pk, transfer.queue)  # once this transaction has committed
    return transfer
