"""The register of copies (every instance the portal stored at a trust's PACS), corrections that follow them
to every holder, and each receiving trust's procedure code mapping."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Via(models.TextChoices):
    PUSH = "push", "Push"
    PULL = "pull", "Request (pull)"
    FORWARD = "forward", "Forwarded after reconciliation"
    SR_FILING = "sr_filing", "Second opinion filed"
    CORRECTION = "correction", "Corrected instance"


class CopyState(models.TextChoices):
    SENDING = "sending", "On its way"  # noted as it went out; not a copy until the destination stored it
    HELD = "held", "Held"
    REJECTED = "rejected", "Rejected by the source"
    CORRECTED = "corrected", "Superseded by a corrected copy"


class Copy(models.Model):
    """One instance stored at a holder's PACS through the portal, as the holder has it: under which patient
    ID and accession, since when, by which transfer. Written as it goes out (`sending`) and made `held` when
    the transfer's end says the destination stored it."""

    holder = models.ForeignKey("directory.Trust", on_delete=models.PROTECT, related_name="copies_held")
    gateway = models.ForeignKey("directory.Gateway", on_delete=models.PROTECT, related_name="+")
    source = models.ForeignKey("directory.Trust", on_delete=models.PROTECT, related_name="copies_sent")
    transfer = models.ForeignKey(
        "transfers.Transfer", on_delete=models.PROTECT, null=True, blank=True, related_name="copies"
    )
    via = models.CharField(max_length=12, choices=Via.choices)
    state = models.CharField(max_length=10, choices=CopyState.choices, default=CopyState.SENDING, db_index=True)
    study_instance_uid = models.CharField(max_length=64, db_index=True)
    series_instance_uid = models.CharField(max_length=64)
    sop_instance_uid = models.CharField(max_length=64)
    sop_class_uid = models.CharField(max_length=64, blank=True)
    # The identity the holder's copy carries (after reconciliation and coercion).
    patient_id = models.CharField(max_length=64, blank=True)
    issuer = models.CharField(max_length=64, blank=True)
    accession_number = models.CharField(max_length=16, blank=True)
    nhs_number = models.CharField(max_length=10, blank=True, db_index=True)
    patient_name = models.CharField(max_length=200, blank=True)
    birth_date = models.CharField(max_length=8, blank=True)
    sex = models.CharField(max_length=16, blank=True)
    study_description = models.CharField(max_length=64, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    noted_at = models.DateTimeField(auto_now_add=True)
    stored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["holder", "study_instance_uid", "series_instance_uid", "sop_instance_uid"]
        constraints = [
            models.UniqueConstraint(fields=["transfer", "sop_instance_uid"], name="copy_unique_transfer_sop"),
        ]
        indexes = [models.Index(fields=["holder", "state"], name="copy_holder_state")]

    def __str__(self) -> str:
        return f"{self.sop_instance_uid} at {self.holder_id} ({self.state})"


class CorrectionKind(models.TextChoices):
    REJECTION = "rejection", "Rejected"
    IDENTITY = "identity", "Patient identity corrected"


class RejectionReason(models.TextChoices):
    """DCM codes of a Key Object Selection rejection note (PS3.16 CID 7011, IHE IOCM)."""

    QUALITY = "113001", "Rejected for Quality Reasons"
    PATIENT_SAFETY = "113037", "Rejected for Patient Safety Reasons"
    WORKLIST = "113038", "Incorrect Modality Worklist Entry"
    RETENTION = "113039", "Data Retention Policy Expired"


class Correction(models.Model):
    """A source trust's correction of a study it sent: instances, series or the study rejected with a reason,
    or the patient's identity corrected. Sent to every holder of a copy (one CorrectionDelivery each)."""

    source = models.ForeignKey("directory.Trust", on_delete=models.PROTECT, related_name="corrections")
    kind = models.CharField(max_length=10, choices=CorrectionKind.choices)
    reason = models.CharField(max_length=6, choices=RejectionReason.choices)
    comment = models.TextField(blank=True)
    study_instance_uid = models.CharField(max_length=64, db_index=True)
    # Empty: the whole study; else only these series / instances (what the note references).
    series_instance_uids = models.JSONField(default=list, blank=True)
    sop_instance_uids = models.JSONField(default=list, blank=True)
    # An identity correction: the patient's corrected identity, as the source now holds it.
    corrected = models.JSONField(default=dict, blank=True)
    nhs_number = models.CharField(max_length=10, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"correction {self.pk} of {self.study_instance_uid} ({self.kind})"


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Waiting to be sent"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class CorrectionDelivery(models.Model):
    """A correction on its way to, or at, one holder: the rejection note (and the corrected instances) sent
    to its gateway under the one retry policy; the holder's imaging managers acknowledge it."""

    correction = models.ForeignKey(Correction, on_delete=models.CASCADE, related_name="deliveries")
    holder = models.ForeignKey("directory.Trust", on_delete=models.PROTECT, related_name="corrections_received")
    gateway = models.ForeignKey("directory.Gateway", on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=8, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    instances = models.PositiveIntegerField(default=0, help_text="Copies at this holder the correction names.")
    note_sop_instance_uid = models.CharField(max_length=64, blank=True)
    corrected_sent = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-correction__created_at", "holder"]
        constraints = [
            models.UniqueConstraint(fields=["correction", "holder", "gateway"], name="delivery_unique_holder_gateway")
        ]

    def __str__(self) -> str:
        return f"correction {self.correction_id} to {self.holder_id} ({self.state})"


class ProcedureMapping(models.Model):
    """A receiving trust's common code for a sender's procedure code or study description pattern."""

    trust = models.ForeignKey("directory.Trust", on_delete=models.CASCADE, related_name="procedure_mappings")
    sender_scheme = models.CharField(max_length=16, blank=True)
    sender_code = models.CharField(max_length=16, blank=True)
    description_pattern = models.CharField(max_length=64, blank=True)
    nicip_code = models.CharField("NICIP code", max_length=8)
    nicip_meaning = models.CharField(max_length=64, blank=True)
    snomed_code = models.CharField("SNOMED CT concept", max_length=18)
    snomed_meaning = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["trust", "sender_scheme", "sender_code", "description_pattern"]
        constraints = [
            models.UniqueConstraint(
                fields=["trust", "sender_scheme", "sender_code", "description_pattern"], name="mapping_unique_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.sender_code or self.description_pattern} → {self.nicip_code}"


class UnmappedProcedure(models.Model):
    """A sender's procedure that arrived at a trust with a mapping table and matched none of its rows."""

    trust = models.ForeignKey("directory.Trust", on_delete=models.CASCADE, related_name="unmapped_procedures")
    source = models.ForeignKey("directory.Trust", on_delete=models.CASCADE, related_name="+")
    sender_scheme = models.CharField(max_length=16, blank=True)
    sender_code = models.CharField(max_length=16, blank=True)
    sender_meaning = models.CharField(max_length=64, blank=True)
    study_description = models.CharField(max_length=64, blank=True)
    studies = models.PositiveIntegerField(default=1)
    first_seen = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-last_seen"]
        constraints = [
            models.UniqueConstraint(
                fields=["trust", "source", "sender_scheme", "sender_code", "study_description"],
                name="unmapped_unique_key",
            )
        ]

    def __str__(self) -> str:
        return f"unmapped {self.sender_code or self.study_description} at {self.trust_id}"
