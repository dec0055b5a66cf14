"""What the portal's DICOM receiver took in and what it refused, so imaging managers can see both.

The files themselves live under SPOOL_DIR; these rows are the database's record of them.
"""

from __future__ import annotations

from django.db import models

from directory.models import Trust


class ReceivedInstance(models.Model):
    """One instance the receiver stored (a C-MOVE sub-operation or a push)."""

    sop_instance_uid = models.CharField("SOP Instance UID", max_length=64, db_index=True)
    sop_class_uid = models.CharField("SOP Class UID", max_length=64)
    study_instance_uid = models.CharField("Study Instance UID", max_length=64, db_index=True)
    series_instance_uid = models.CharField("Series Instance UID", max_length=64)
    transfer_syntax_uid = models.CharField(max_length=64, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    calling_ae = models.CharField("calling AE title", max_length=16, blank=True)
    called_ae = models.CharField("called AE title", max_length=16, blank=True)
    peer_address = models.CharField(max_length=100, blank=True)
    sender_trust = models.ForeignKey(
        Trust,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The trust whose gateway has the calling AE title, when one does.",
    )
    path = models.CharField(max_length=1024)
    job_id = models.CharField(max_length=64, blank=True)
    job_label = models.CharField(max_length=200, blank=True)
    duplicate = models.BooleanField(default=False, help_text="Identical bytes were already held.")
    pixel_warning = models.TextField(
        blank=True,
        help_text="Stored as received, but its first image frame did not decode with the portal's decoders "
        "(why); the portal may be unable to show or transcode it.",
    )
    received_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.sop_instance_uid} from {self.calling_ae or '?'}"


class QuarantinedInstance(models.Model):
    """An instance the receiver refused; its bytes and a JSON sidecar wait in the quarantine folder."""

    reason = models.TextField()
    status = models.PositiveIntegerField(help_text="The DICOM status answered to the sender.")
    calling_ae = models.CharField("calling AE title", max_length=16, blank=True)
    called_ae = models.CharField("called AE title", max_length=16, blank=True)
    peer_address = models.CharField(max_length=100, blank=True)
    sender_trust = models.ForeignKey(
        Trust,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The trust whose gateway has the calling AE title, when one does.",
    )
    sop_instance_uid = models.CharField("SOP Instance UID", max_length=64, blank=True)
    sop_class_uid = models.CharField("SOP Class UID", max_length=64, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    path = models.CharField(max_length=1024)
    sidecar = models.CharField(max_length=1024, blank=True)
    received_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"Quarantined from {self.calling_ae or '?'}: {self.reason[:60]}"

    @property
    def status_hex(self) -> str:
        return f"0x{self.status:04X}"
