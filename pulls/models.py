"""Requests (pulls): trust B asks trust A for a patient's studies; A approves (a transfer) or declines."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from transfers.models import Priority


class Sex(models.TextChoices):
    MALE = "M", "Male"
    FEMALE = "F", "Female"
    OTHER = "O", "Other"
    UNKNOWN = "U", "Not known"


class RequestStatus(models.TextChoices):
    PENDING = "pending", "Waiting for approval"
    APPROVED = "approved", "Approved"
    DECLINED = "declined", "Declined"


class PullRequest(models.Model):
    """A clinician of `requesting_trust` asks `source_trust` for one patient's studies.

    `candidates` is what the source's PACS answered when the request was made (studies of that NHS
    number within the date range and modalities), each with the demographics that disagree with the
    request, so the approver sees a mismatch before choosing.
    """

    requesting_trust = models.ForeignKey("directory.Trust", on_delete=models.PROTECT, related_name="requests_made")
    source_trust = models.ForeignKey("directory.Trust", on_delete=models.PROTECT, related_name="requests_received")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="pull_requests")
    nhs_number = models.CharField(max_length=10)
    family_name = models.CharField(max_length=64)
    given_name = models.CharField(max_length=64)
    birth_date = models.DateField()
    sex = models.CharField(max_length=1, choices=Sex.choices)
    date_from = models.DateField(null=True, blank=True)
    date_to = models.DateField(null=True, blank=True)
    modalities = models.JSONField(default=list, blank=True)
    priority = models.CharField(max_length=8, choices=Priority.choices, default=Priority.ROUTINE)
    reason = models.TextField()
    status = models.CharField(max_length=10, choices=RequestStatus.choices, default=RequestStatus.PENDING)
    candidates = models.JSONField(default=list, blank=True)
    candidates_error = models.TextField(blank=True, help_text="Why the source's PACS could not be searched.")
    approved_study_uids = models.JSONField(default=list, blank=True)
    auto_approved = models.BooleanField(default=False)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decline_reason = models.TextField(blank=True)
    transfer = models.OneToOneField(
        "transfers.Transfer", on_delete=models.PROTECT, null=True, blank=True, related_name="pull_request"
    )
    escalated_at = models.DateTimeField(null=True, blank=True)
    arrival_notified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["status", "escalated_at"], name="pull_request_status_escalated")]

    def __str__(self) -> str:
        return f"request {self.pk} {self.requesting_trust.ods_code} ← {self.source_trust.ods_code} ({self.status})"

    @property
    def candidate_uids(self) -> list[str]:
        return [c["study_instance_uid"] for c in self.candidates]
