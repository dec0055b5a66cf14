"""Reconciliation on arrival: one decision per study of a transfer, and the queue of held arrivals."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Outcome(models.TextChoices):
    MATCHED = "matched", "Filed under the local patient found by NHS number"
    UNCHANGED = "unchanged", "Identity left as sent (reconciliation of patient IDs is off)"
    HELD = "held", "Waiting for an imaging manager"
    RESOLVED = "resolved", "Resolved by an imaging manager"


class HoldReason(models.TextChoices):
    NO_NHS_NUMBER = "no_nhs_number", "The study carries no valid NHS number"
    NO_MATCH = "no_match", "No local patient has this NHS number"
    SEVERAL_MATCHES = "several_matches", "Several local patients have this NHS number"
    BIRTH_DATE_CONFLICT = "birth_date_conflict", "Birth dates disagree"
    BIRTH_DATE_MISSING = "birth_date_missing", "The birth date cannot be confirmed"


class StudyReconciliation(models.Model):
    """How one study of a transfer is filed at the destination; `held` ones form the queue.

    `source_*` is the identity the study came with; `patient_id`/`issuer` the identity it is (or will be)
    filed under at the destination. `candidates` lists the local patients the lookup found.
    """

    transfer = models.ForeignKey("transfers.Transfer", on_delete=models.PROTECT, related_name="reconciliations")
    destination = models.ForeignKey("directory.Trust", on_delete=models.PROTECT, related_name="reconciliations")
    study_instance_uid = models.CharField(max_length=64)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    hold_reason = models.CharField(max_length=24, choices=HoldReason.choices, blank=True)
    detail = models.TextField(blank=True)
    nhs_number = models.CharField(max_length=10, blank=True)
    patient_name = models.CharField(max_length=200, blank=True)
    birth_date = models.CharField(max_length=8, blank=True)
    sex = models.CharField(max_length=16, blank=True)
    source_patient_id = models.CharField(max_length=64, blank=True)
    source_issuer = models.CharField(max_length=64, blank=True)
    candidates = models.JSONField(default=list, blank=True)
    patient_id = models.CharField(max_length=64, blank=True)
    issuer = models.CharField(max_length=64, blank=True)
    new_patient = models.BooleanField(default=False)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    forwarded_at = models.DateTimeField(null=True, blank=True)
    forward_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["transfer", "study_instance_uid"], name="reconciliation_unique_study")
        ]
        indexes = [models.Index(fields=["destination", "outcome"], name="reconciliation_queue")]

    def __str__(self) -> str:
        return f"{self.study_instance_uid} → {self.destination.ods_code} ({self.outcome})"
