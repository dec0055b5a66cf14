"""Writing to the directory: trusts, gateways and agreements, each change on the audit trail."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction

from audit.codes import Action, EventID, EventType
from audit.context import Actor
from audit.services import record_event

from .models import Gateway, SharingAgreement, Trust

# Reconciliation switches a new regional archive starts with off.
ARCHIVE_KEEPS_AS_SENT = ("reconcile_patient_id", "prefix_accession", "prefix_study_description")

# Never copied into audit rows.
SECRET_FIELDS = {"dicomweb_password", "dicomweb_token"}


def _apply(instance: Any, values: Mapping[str, Any]) -> dict[str, Any]:
    changed = {}
    for field, value in values.items():
        if getattr(instance, field, None) != value:  # None: a relation not set yet on a new object
            setattr(instance, field, value)
            changed[field] = "(changed)" if field in SECRET_FIELDS else _plain(value)
    return changed


def _plain(value: Any) -> Any:
    return getattr(value, "ods_code", value)


def _record(instance: Any, kind: str, action: Action, event_type: str, trust: str, changed: dict, actor: Actor) -> None:
    record_event(
        event_id=EventID.SECURITY_ALERT,
        event_type=event_type,
        action=action,
        actor=actor,
        trust=trust,
        detail={kind: str(instance), "id": instance.pk, "fields": changed},
    )


@transaction.atomic
def trust_save(*, actor: Actor, instance: Trust | None = None, **values: Any) -> Trust:
    if instance is None and values.get("kind") == Trust.Kind.REGION:
        # An archive keeps what each trust sent as it was sent: no identity rewriting on arrival.
        for switch in ARCHIVE_KEEPS_AS_SENT:
            values.setdefault(switch, False)
    trust = instance or Trust()
    changed = _apply(trust, values)
    trust.full_clean()
    trust.save()
    if "kind" in changed:  # a gateway's kind follows its trust's
        trust.gateways.update(kind=Gateway.kind_for(trust))
    action = Action.UPDATE if instance else Action.CREATE
    _record(trust, "trust", action, EventType.SECURITY_CONFIGURATION, trust.ods_code, changed, actor)
    return trust


@transaction.atomic
def gateway_save(*, actor: Actor, instance: Gateway | None = None, **values: Any) -> Gateway:
    """Create or change a gateway; full_clean runs field, consistency and uniqueness rules first."""
    gateway = instance or Gateway()
    changed = _apply(gateway, values)
    gateway.full_clean()
    gateway.save()
    action = Action.UPDATE if instance else Action.CREATE
    _record(gateway, "gateway", action, EventType.NETWORK_CONFIGURATION, gateway.trust.ods_code, changed, actor)
    return gateway


@transaction.atomic
def agreement_save(*, actor: Actor, instance: SharingAgreement | None = None, **values: Any) -> SharingAgreement:
    agreement = instance or SharingAgreement()
    changed = _apply(agreement, values)
    agreement.full_clean()
    agreement.save()
    action = Action.UPDATE if instance else Action.CREATE
    for ods in (agreement.trust_a.ods_code, agreement.trust_b.ods_code):
        _record(agreement, "agreement", action, EventType.SECURITY_CONFIGURATION, ods, changed, actor)
    return agreement


def agreement_allows(source: Trust, destination: Trust) -> bool:
    """May `source` send images to `destination` under an active agreement?"""
    pair = SharingAgreement.objects.filter(
        active=True, trust_a__in=(source, destination), trust_b__in=(source, destination)
    )
    return any(agreement.allows(source, destination) for agreement in pair)
