"""The append-only audit event store. Each row carries the SHA-256 of the previous row (a hash chain)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.conf import settings
from django.db import models

from .codes import Action, ActorType, EventID, Outcome

GENESIS_HASH = "0" * 64


class AuditEvent(models.Model):
    seq = models.BigIntegerField(unique=True, editable=False, help_text="Position in the hash chain.")
    timestamp = models.DateTimeField(db_index=True, editable=False)
    event_id = models.CharField(max_length=6, choices=EventID.choices, db_index=True)
    event_type = models.CharField(max_length=6, blank=True)
    action = models.CharField(max_length=1, choices=Action.choices)
    outcome = models.PositiveSmallIntegerField(choices=Outcome.choices, default=Outcome.SUCCESS)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    # PROTECT: staff are deactivated, never deleted, once the record names them.
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_label = models.CharField(max_length=254, blank=True, help_text="Email, token owner or link label.")
    trust = models.CharField("trust ODS code", max_length=5, blank=True, db_index=True)
    nhs_number = models.CharField(max_length=10, blank=True, db_index=True)
    patient_id = models.CharField(max_length=64, blank=True)
    study_uids = models.JSONField(default=list, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    reason = models.TextField(blank=True)
    detail = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, editable=False)

    class Meta:
        ordering = ["-seq"]
        indexes = [models.Index(fields=["trust", "-timestamp"]), models.Index(fields=["actor_user", "-timestamp"])]

    def __str__(self) -> str:
        return f"#{self.seq} {self.get_event_id_display()} {self.action} by {self.actor_label or self.actor_type}"

    def canonical(self) -> dict[str, Any]:
        """The fields the hash covers, in a representation that survives a database round trip."""
        return {
            "seq": self.seq,
            "timestamp": self.timestamp.isoformat(timespec="microseconds"),
            "event_id": self.event_id,
            "event_type": self.event_type,
            "action": self.action,
            "outcome": int(self.outcome),
            "actor_type": self.actor_type,
            "actor_user": self.actor_user_id,
            "actor_label": self.actor_label,
            "trust": self.trust,
            "nhs_number": self.nhs_number,
            "patient_id": self.patient_id,
            "study_uids": list(self.study_uids),
            "client_ip": self.client_ip,
            "user_agent": self.user_agent,
            "reason": self.reason,
            "detail": self.detail,
            "prev_hash": self.prev_hash,
        }

    def compute_hash(self) -> str:
        blob = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


class ChainHead(models.Model):
    """One row: the last sequence number and hash. Writers lock it, so the chain never forks."""

    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default=GENESIS_HASH)

    def __str__(self) -> str:
        return f"audit chain head #{self.seq}"
