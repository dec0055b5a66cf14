"""The append-only audit event store. Each row carries the SHA-256 of the previous row (a hash chain).

Alongside it: the chain head (one row writers lock), the digests of the head exported off the database,
and the alerts the IG console raises from the events.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from .codes import Action, ActorType, AlertStatus, EventID, Outcome, display
from .fields import StringListField

GENESIS_HASH = "0" * 64

# The fields the hash covers, in order of the original release.
HASHED_FIELDS = (
    "seq",
    "timestamp",
    "event_id",
    "event_type",
    "action",
    "outcome",
    "actor_type",
    "actor_user_id",
    "actor_label",
    "trust",
    "nhs_number",
    "patient_id",
    "study_uids",
    "client_ip",
    "user_agent",
    "reason",
    "detail",
    "prev_hash",
)
# Added later. They enter the hash only when set, so rows written before they existed still verify.
OPTIONAL_HASHED_FIELDS = ("peer_trust", "scope", "actor_ref", "request_id")
ALL_HASHED_FIELDS = HASHED_FIELDS + OPTIONAL_HASHED_FIELDS


class AppendOnlyError(RuntimeError):
    """Audit events are written once, by audit.services.record_event, and never changed or removed."""


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("Audit events cannot be changed.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit events cannot be deleted.")

    def bulk_update(self, *args: Any, **kwargs: Any) -> int:
        raise AppendOnlyError("Audit events cannot be changed.")

    def bulk_create(self, *args: Any, **kwargs: Any) -> list:
        raise AppendOnlyError("Audit events are added one at a time by record_event, which chains them.")


def canonical(values: Mapping[str, Any]) -> dict[str, Any]:
    """The hashed representation of an event, from a model instance's fields or a values() row.

    Chosen to survive a database round trip on SQLite and PostgreSQL (timestamps in UTC to the
    microsecond, JSON re-serialised with sorted keys).
    """
    data = {
        "seq": values["seq"],
        "timestamp": values["timestamp"].isoformat(timespec="microseconds"),
        "event_id": values["event_id"],
        "event_type": values["event_type"],
        "action": values["action"],
        "outcome": int(values["outcome"]),
        "actor_type": values["actor_type"],
        "actor_user": values["actor_user_id"],
        "actor_label": values["actor_label"],
        "trust": values["trust"],
        "nhs_number": values["nhs_number"],
        "patient_id": values["patient_id"],
        "study_uids": list(values["study_uids"]),
        "client_ip": values["client_ip"],
        "user_agent": values["user_agent"],
        "reason": values["reason"],
        "detail": values["detail"],
        "prev_hash": values["prev_hash"],
    }
    for name in OPTIONAL_HASHED_FIELDS:
        if values.get(name):
            data[name] = list(values[name]) if name == "scope" else values[name]
    return data


def hash_of(values: Mapping[str, Any]) -> str:
    blob = json.dumps(canonical(values), sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class AuditEvent(models.Model):
    """One access or action. Written only by audit.services.record_event; never updated or deleted.

    `trust` is the trust whose data or configuration the event is about (for a transfer, the source);
    `peer_trust` the other party (the destination, the requesting trust). `scope` lists every trust
    whose IG officers may see the event: those two, or, for events about no trust (signing in), the
    trusts the acting or affected member of staff belonged to at the time.
    """

    seq = models.BigIntegerField(unique=True, editable=False, help_text="Position in the hash chain.")
    timestamp = models.DateTimeField(editable=False)
    event_id = models.CharField(max_length=6, choices=EventID.choices)
    event_type = models.CharField(max_length=6, blank=True)
    action = models.CharField(max_length=1, choices=Action.choices)
    outcome = models.PositiveSmallIntegerField(choices=Outcome.choices, default=Outcome.SUCCESS)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    # PROTECT: staff are deactivated, never deleted, once the record names them.
    # No index of its own: audit_user_time (actor_user, timestamp, seq) serves every lookup by actor.
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    actor_label = models.CharField(max_length=254, blank=True, help_text="Email, token owner or link label.")
    actor_ref = models.CharField(
        max_length=64, blank=True, help_text="Which token or share link acted (token:<fingerprint>, share_link:<id>)."
    )
    trust = models.CharField("trust ODS code", max_length=5, blank=True)
    peer_trust = models.CharField("other trust ODS code", max_length=5, blank=True)
    scope = StringListField(default=list, blank=True, help_text="ODS codes of the trusts that may see this event.")
    nhs_number = models.CharField(max_length=10, blank=True)
    patient_id = models.CharField(max_length=64, blank=True)
    study_uids = StringListField(default=list, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    reason = models.TextField(blank=True)
    detail = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, editable=False)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-timestamp", "-seq"]
        # Every console query is "newest first" under one equality filter, so each index ends in
        # (timestamp, seq): PostgreSQL walks it backwards and stops after one page (keyset paging).
        indexes = [
            models.Index(fields=["timestamp", "seq"], name="audit_time_seq"),
            models.Index(fields=["nhs_number", "timestamp", "seq"], name="audit_nhs_time"),
            models.Index(fields=["patient_id", "timestamp", "seq"], name="audit_patient_time"),
            models.Index(fields=["actor_user", "timestamp", "seq"], name="audit_user_time"),
            models.Index(fields=["event_id", "timestamp", "seq"], name="audit_event_time"),
            models.Index(fields=["actor_ref", "timestamp"], name="audit_actor_ref_time", condition=~Q(actor_ref="")),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.get_event_id_display()} {self.action} by {self.actor_label or self.actor_type}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("Audit events cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise AppendOnlyError("Audit events cannot be deleted.")

    def canonical(self) -> dict[str, Any]:
        """The fields the hash covers, in a representation that survives a database round trip."""
        return canonical({name: getattr(self, name) for name in ALL_HASHED_FIELDS})

    def compute_hash(self) -> str:
        return hash_of({name: getattr(self, name) for name in ALL_HASHED_FIELDS})

    @property
    def event_type_display(self) -> str:
        return display(self.event_type) if self.event_type else ""

    @property
    def is_emergency(self) -> bool:
        from .codes import EventType

        return self.event_type == EventType.EMERGENCY_OVERRIDE_STARTED


class ChainHead(models.Model):
    """One row: the last sequence number and hash. Writers lock it, so the chain never forks."""

    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default=GENESIS_HASH)

    def __str__(self) -> str:
        return f"audit chain head #{self.seq}"


class ChainDigest(models.Model):
    """A signed statement of the chain head, exported daily (a file and an email) off the database.

    A database superuser could rewrite a chain that lives only in the database; they cannot recall the
    digests already in IG officers' mailboxes and on the archive path. This table is a convenience
    index of what was sent, not the evidence.
    """

    created_at = models.DateTimeField(auto_now_add=True)
    head_seq = models.BigIntegerField()
    head_hash = models.CharField(max_length=64)
    payload = models.TextField(help_text="The signed JSON document, byte for byte.")
    signature = models.CharField(max_length=256)
    algorithm = models.CharField(max_length=32)
    key_id = models.CharField(max_length=64, blank=True)
    path = models.CharField(max_length=500, blank=True)
    chain_ok = models.BooleanField(default=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"digest of #{self.head_seq} at {self.created_at:%Y-%m-%d %H:%M}"


class AlertScanState(models.Model):
    """One row: the last event sequence number the alert rules have looked at."""

    last_seq = models.BigIntegerField(default=0)
    scanned_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"alerts scanned to #{self.last_seq}"


class AuditAlert(models.Model):
    """Something an IG officer should look at, raised by audit.alerts from the events.

    One alert per (rule, subject, trust); a rule that keeps firing updates the count and the last-seen
    time rather than flooding the console and the officers' inboxes.
    """

    class Kind(models.TextChoices):
        SHARE_LINK_MANY_IPS = "share_link_many_ips", "Share link used from many IP addresses"
        UNRELATED_ACCESS = "unrelated_access", "Access with no transfer, request or link involving the trust"
        BULK_SEARCH = "bulk_search", "Bulk searching"
        OUT_OF_HOURS = "out_of_hours", "Access out of hours"
        EMERGENCY_OVERRIDE = "emergency_override", "Emergency access (override or auto-approval)"
        CHAIN_BROKEN = "chain_broken", "Audit chain verification failed"
        DIGEST_PROBLEM = "digest_problem", "Audit chain digest missing or not genuine"

    class Severity(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"

    Status = AlertStatus

    kind = models.CharField(max_length=32, choices=Kind.choices)
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.MEDIUM)
    trust = models.CharField("trust ODS code", max_length=5, blank=True, help_text="Blank: the whole region.")
    dedupe_key = models.CharField(max_length=200, unique=True)
    summary = models.CharField(max_length=300)
    subject_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    subject_label = models.CharField(max_length=254, blank=True)
    nhs_number = models.CharField(max_length=10, blank=True)
    event_count = models.PositiveIntegerField(default=1)
    first_seq = models.BigIntegerField(null=True, blank=True)
    last_seq = models.BigIntegerField(null=True, blank=True)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    detail = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-last_seen", "-pk"]
        indexes = [models.Index(fields=["trust", "status", "-last_seen"], name="audit_alert_trust_status")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.trust or 'region'}): {self.summary}"
