"""Transfers between trusts and their per-instance ledger. The database is the source of truth: the
broker only carries the transfer's ID, and a worker that dies resumes from the ledger."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Priority(models.TextChoices):
    ROUTINE = "routine", "Routine"
    URGENT = "urgent", "Urgent"
    TRAUMA = "trauma", "Trauma"


# Work the portal does on a trust's behalf (forwarding to the regional archive, docs/region.md): never a
# clinician's choice (forms and the API offer Priority only), run from the lowest-priority queue.
BULK = "bulk"
PRIORITY_CHOICES = [*Priority.choices, (BULK, "Background (forwarding)")]
QUEUES = {
    Priority.ROUTINE.value: "routine",
    Priority.URGENT.value: "urgent",
    Priority.TRAUMA.value: "urgent",
    BULK: "bulk",
}


class Status(models.TextChoices):
    QUEUED = "queued", "Queued"
    RETRIEVING = "retrieving", "Retrieving"
    SENDING = "sending", "Sending"
    VERIFYING = "verifying", "Verifying"
    COMPLETED = "completed", "Completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors", "Completed with errors"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    # Everything else has arrived or failed; some instances wait in the destination's reconciliation queue.
    AWAITING_RECONCILIATION = "awaiting_reconciliation", "Awaiting reconciliation"


ACTIVE = (Status.QUEUED, Status.RETRIEVING, Status.SENDING, Status.VERIFYING)
RUNNING = (Status.RETRIEVING, Status.SENDING, Status.VERIFYING)
FINISHED = (Status.COMPLETED, Status.COMPLETED_WITH_ERRORS, Status.FAILED, Status.CANCELLED)
RETRYABLE = (Status.COMPLETED_WITH_ERRORS, Status.FAILED, Status.CANCELLED)


class Transfer(models.Model):
    """Moving studies from a source trust's gateway to a destination trust's gateway."""

    source = models.ForeignKey("directory.Trust", on_delete=models.PROTECT, related_name="outgoing_transfers")
    destination = models.ForeignKey("directory.Trust", on_delete=models.PROTECT, related_name="incoming_transfers")
    source_gateway = models.ForeignKey("directory.Gateway", on_delete=models.PROTECT, related_name="+")
    destination_gateway = models.ForeignKey("directory.Gateway", on_delete=models.PROTECT, related_name="+")
    study_instance_uids = models.JSONField(default=list)
    priority = models.CharField(max_length=8, choices=PRIORITY_CHOICES, default=Priority.ROUTINE)
    reason = models.TextField()
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="transfers")
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.QUEUED, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # The running worker's lease: a second delivery of the same task waits while it is fresh.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=128, blank=True)
    # When the current run of transient gateway errors began; the retry window counts from here.
    first_transient_error_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Times a worker has started on it.")
    transient_failures = models.PositiveIntegerField(default=0)
    # [{"sop_instance_uid"?, "study_instance_uid"?, "error": "..."}], readable by an imaging manager.
    errors = models.JSONField(default=list, blank=True)
    # Studies whose instances the source's index has listed into the ledger. A study not in it is listed
    # again by the next pass even when some of its instances have rows: a pass that died while the
    # listing was still running leaves rows for the first batches only.
    listed_studies = models.JSONField(default=list, blank=True)
    # The plan, from the source's series-level counts before the first byte moves: {study UID: instances}.
    # Ledger rows are added as instances are retrieved; progress counts the larger of the two.
    planned = models.JSONField(default=dict, blank=True)
    instances_planned = models.PositiveIntegerField(default=0)
    # The patient, as the source's C-FIND / QIDO-RS answered, for the audit trail.
    patient_id = models.CharField(max_length=64, blank=True)
    nhs_number = models.CharField(max_length=10, blank=True)
    # Who and what each study is, as the source's PACS answered when the transfer was asked for
    # (exchange.services.study_summaries): lists and pages name the patient, not UIDs.
    studies = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="transfer_status_heartbeat")]

    def __str__(self) -> str:
        return f"transfer {self.pk} {self.source.ods_code} → {self.destination.ods_code} ({self.status})"

    @property
    def queue(self) -> str:
        return QUEUES.get(self.priority, "urgent")


class InstanceState(models.TextChoices):
    PENDING = "pending", "Pending"
    RETRIEVED = "retrieved", "Retrieved"
    STORED = "stored", "Stored"
    FAILED = "failed", "Failed"
    # Kept on disk in the destination trust's reconciliation queue: not sent yet, never reported as sent.
    HELD = "held", "Held for reconciliation"
    # The destination held it before we sent it (learned by asking, or answered "duplicate"): not sent,
    # not a failure, never sent again.
    ALREADY_PRESENT = "already_present", "Already at the destination"


# At the destination by the destination's own answer: what progress counts as done.
DELIVERED = (InstanceState.STORED, InstanceState.ALREADY_PRESENT)


class TransferInstance(models.Model):
    """One SOP instance of a transfer. `stored` means the destination accepted it: never sent again."""

    transfer = models.ForeignKey(Transfer, on_delete=models.CASCADE, related_name="instances")
    sop_instance_uid = models.CharField(max_length=64)
    study_instance_uid = models.CharField(max_length=64)
    series_instance_uid = models.CharField(max_length=64, blank=True)
    size = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=16, choices=InstanceState.choices, default=InstanceState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["transfer", "study_instance_uid", "series_instance_uid", "sop_instance_uid"]
        constraints = [
            models.UniqueConstraint(fields=["transfer", "sop_instance_uid"], name="transfer_instance_unique_sop")
        ]
        indexes = [models.Index(fields=["transfer", "state"], name="transfer_instance_state")]

    def __str__(self) -> str:
        return f"{self.sop_instance_uid} ({self.state})"
