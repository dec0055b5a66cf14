"""Forwarding rules: a trust's arrivals copied on to the regional archive as background transfers
(priority `bulk`, the lowest queue), never ahead of a clinician's work (docs/region.md)."""

from __future__ import annotations

from typing import Any

import structlog
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from accounts import permissions as perms
from audit import catalogue
from audit.codes import Action, EventID, EventType
from audit.context import SYSTEM, Actor
from audit.services import record_event
from directory.models import Trust
from transfers.models import BULK, InstanceState, Priority, Status, Transfer
from transfers.services import transfer_create_for_request

from .models import Forward, ForwardingRule

log = structlog.get_logger(__name__)

ARRIVED = (Status.COMPLETED, Status.COMPLETED_WITH_ERRORS)
MODALITY_MAX = 16


# --- the rules: set by a trust's imaging managers ------------------------------------------------------


@transaction.atomic
def forwarding_rule_create(
    *, trust: Trust, archive: Trust, trigger: str, modality: str = "", user: Any, actor: Actor
) -> ForwardingRule:
    if not perms.may_manage_forwarding(user, trust.pk):
        raise PermissionDenied(f"Only imaging managers of {trust.ods_code} set its forwarding rules.")
    if archive.kind != Trust.Kind.REGION:
        raise ValidationError({"archive": f"{archive.ods_code} is not the regional archive."})
    if trigger not in ForwardingRule.Trigger.values:
        raise ValidationError({"trigger": f"One of {', '.join(ForwardingRule.Trigger.values)}."})
    modality = (modality or "").strip().upper()
    if trigger == ForwardingRule.Trigger.MODALITY and not (modality.isalnum() and len(modality) <= MODALITY_MAX):
        raise ValidationError({"modality": "Name the modality (CT, MR, CR…)."})
    if trigger != ForwardingRule.Trigger.MODALITY:
        modality = ""
    rule = ForwardingRule(trust=trust, archive=archive, trigger=trigger, modality=modality, created_by=user)
    rule.full_clean()
    rule.save()
    _record(rule, Action.CREATE, actor)
    return rule


@transaction.atomic
def forwarding_rule_set_active(*, rule: ForwardingRule, active: bool, user: Any, actor: Actor) -> ForwardingRule:
    if not perms.may_manage_forwarding(user, rule.trust_id):
        raise PermissionDenied(f"Only imaging managers of {rule.trust.ods_code} change its forwarding rules.")
    rule.active = active
    rule.save(update_fields=["active", "updated_at"])
    _record(rule, Action.UPDATE, actor)
    return rule


@transaction.atomic
def forwarding_rule_delete(*, rule: ForwardingRule, user: Any, actor: Actor) -> None:
    """A rule that has forwarded something is switched off, not deleted: its forwards name it."""
    if not perms.may_manage_forwarding(user, rule.trust_id):
        raise PermissionDenied(f"Only imaging managers of {rule.trust.ods_code} change its forwarding rules.")
    _record(rule, Action.DELETE, actor)
    if rule.forwards.exists():
        rule.active = False
        rule.save(update_fields=["active", "updated_at"])
    else:
        rule.delete()


def _record(rule: ForwardingRule, action: str, actor: Actor) -> None:
    record_event(
        event_id=EventID.SECURITY_ALERT,
        event_type=EventType.SECURITY_CONFIGURATION,
        action=action,
        actor=actor,
        trust=rule.trust.ods_code,
        peer_trust=rule.archive.ods_code,
        detail={"forwarding_rule": rule.pk, "rule": rule.describe(), "active": rule.active},
    )


# --- arrivals: the transfer_ended signal ----------------------------------------------------------------


def forward_arrival(sender: Any = None, *, transfer_id: int, **kwargs: Any) -> list[Forward]:
    """Copy what a finished transfer brought to its destination on to the archive(s) its rules name.
    Called once the transfer's end has committed; a second call for the same arrival adds nothing."""
    arrival = Transfer.objects.select_related("source", "destination").get(pk=transfer_id)
    if arrival.status not in ARRIVED or arrival.priority == BULK:
        return []
    rules = ForwardingRule.objects.filter(trust=arrival.destination, active=True).exclude(archive=arrival.source)
    by_archive: dict[int, list[ForwardingRule]] = {}
    for rule in rules.select_related("archive", "created_by", "trust"):
        by_archive.setdefault(rule.archive_id, []).append(rule)
    if not by_archive:
        return []
    arrived = _arrived_studies(arrival)
    forwards = []
    for matching in by_archive.values():
        studies = [uid for uid in arrived if any(_matches(rule, arrival, uid) for rule in matching)]
        if studies:
            forward = _forward(arrival, matching, studies)
            if forward is not None:
                forwards.append(forward)
    return forwards


def _arrived_studies(arrival: Transfer) -> list[str]:
    """Studies of which the destination accepted at least one instance, in the transfer's order."""
    stored = set(
        arrival.instances.filter(state=InstanceState.STORED).values_list("study_instance_uid", flat=True).distinct()
    )
    return [uid for uid in arrival.study_instance_uids if uid in stored]


def _matches(rule: ForwardingRule, arrival: Transfer, study_uid: str) -> bool:
    if rule.trigger == ForwardingRule.Trigger.EVERY_ARRIVAL:
        return True
    if rule.trigger == ForwardingRule.Trigger.TRAUMA_PULL:
        return arrival.priority == Priority.TRAUMA and _is_pull(arrival)
    summary: dict = next((s for s in arrival.studies if s.get("study_instance_uid") == study_uid), {})
    return rule.modality in {str(m).upper() for m in summary.get("modalities") or ()}


def _is_pull(arrival: Transfer) -> bool:
    return hasattr(arrival, "pull_request")  # pulls.PullRequest.transfer: an approved request made it


def _forward(arrival: Transfer, rules: list[ForwardingRule], studies: list[str]) -> Forward | None:
    archive, rule = rules[0].archive, rules[0]
    try:
        with transaction.atomic():
            forward = Forward.objects.create(arrival=arrival, archive=archive)
            forward.rules.set(rules)
            try:
                with transaction.atomic():
                    forward.transfer = transfer_create_for_request(
                        source=arrival.destination,
                        destination=archive,
                        study_instance_uids=studies,
                        priority=BULK,
                        reason=f"Forwarding rule of {arrival.destination.ods_code}: {rule.describe()} "
                        f"(arrival by transfer {arrival.pk}).",
                        requested_by=rule.created_by,
                        studies=[s for s in arrival.studies if s.get("study_instance_uid") in studies],
                    )
            except ValidationError as exc:
                forward.error = " ".join(exc.messages)
                log.warning("forwarding_refused", arrival=arrival.pk, archive=archive.ods_code, error=forward.error)
            forward.save(update_fields=["transfer", "error"])
            if forward.transfer is not None:
                catalogue.PUSH_REQUESTED.record(
                    actor=SYSTEM,
                    trust=arrival.destination.ods_code,
                    peer_trust=archive.ods_code,
                    study_uids=studies,
                    reason=forward.transfer.reason,
                    detail={
                        "transfer": forward.transfer.pk,
                        "priority": BULK,
                        "forwarding_rules": [r.pk for r in rules],
                    },
                )
            return forward
    except IntegrityError:  # this arrival was forwarded to this archive already
        return None
