"""Share links for external consultants, their browser sessions, and the second opinions they return.

Only hashes of the link token and of session keys are stored: a copy of this table opens nothing.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Staging(models.TextChoices):
    QUEUED = "queued", "Queued"
    STAGING = "staging", "Copying from the source PACS"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class ShareLink(models.Model):
    """An external consultant's time-limited access to named studies of one trust."""

    trust = models.ForeignKey("directory.Trust", on_delete=models.PROTECT, related_name="share_links")
    gateway = models.ForeignKey("directory.Gateway", on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="share_links")
    study_instance_uids = models.JSONField(default=list)
    recipient_name = models.CharField(max_length=200)
    recipient_email = models.EmailField()
    purpose = models.TextField()
    allow_download = models.BooleanField(default=False)
    # The consultant's viewer may send back SR, key object selections and segmentations (STOW-RS) into
    # a review area; the link's creator files them into the source PACS (issue #21). Off by default.
    allow_write_back = models.BooleanField(default=False)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The second factor: a one-time code emailed on first open (its keyed hash only).
    code_hash = models.CharField(max_length=64, blank=True)
    code_expires_at = models.DateTimeField(null=True, blank=True)
    code_sent_at = models.DateTimeField(null=True, blank=True)
    code_failures = models.PositiveIntegerField(default=0)
    locked_at = models.DateTimeField(null=True, blank=True)
    # The staged copy under SPOOL_DIR/share/<id>/.
    staging_status = models.CharField(max_length=16, choices=Staging.choices, default=Staging.QUEUED)
    instances_total = models.PositiveIntegerField(default=0)
    instances_staged = models.PositiveIntegerField(default=0)
    staging_error = models.TextField(blank=True)
    # Renewed by the worker staging the link; one silent for a lease means its worker died (sharing.sweeper).
    staging_heartbeat_at = models.DateTimeField(null=True, blank=True)
    staged_at = models.DateTimeField(null=True, blank=True)
    purged_at = models.DateTimeField(null=True, blank=True)
    # The patient, as the source answered, for the audit trail.
    patient_id = models.CharField(max_length=64, blank=True)
    nhs_number = models.CharField(max_length=10, blank=True)
    # Who and what each study is, as the trust's PACS answered when the link was made (see Transfer.studies).
    studies = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["expires_at"]), models.Index(fields=["purged_at"])]

    def __str__(self) -> str:
        return f"Share link {self.pk} ({self.trust.ods_code} → {self.recipient_email})"

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    @property
    def state(self) -> str:
        """One word for pages and the API: revoked, expired, locked, failed, staging or active."""
        if self.revoked_at:
            return "revoked"
        if self.is_expired:
            return "expired"
        if self.locked_at:
            return "locked"
        if self.staging_status == Staging.FAILED:
            return "failed"
        if self.staging_status != Staging.READY:
            return "staging"
        return "active"


class ShareSession(models.Model):
    """A browser that exchanged the link token (and later passed the second factor) for a cookie."""

    link = models.ForeignKey(ShareLink, on_delete=models.CASCADE, related_name="sessions")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    # Series already put on the audit trail for this session (one 110103 per series per session).
    series_seen = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return f"Session {self.pk} of share link {self.link_id}"


class Filing(models.TextChoices):
    PENDING = "pending", "Filing into the source PACS"
    FILED = "filed", "Filed in the source PACS"
    FAILED = "failed", "Filing failed"


class SecondOpinion(models.Model):
    """The consultant's report, returned to the creator and filed back as a Basic Text SR."""

    link = models.ForeignKey(ShareLink, on_delete=models.PROTECT, related_name="opinions")
    text = models.TextField()
    conclusion = models.TextField()
    urgent = models.BooleanField(default=False)
    consultant_name = models.CharField(max_length=200)
    registration_number = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)
    filing_status = models.CharField(max_length=16, choices=Filing.choices, default=Filing.PENDING)
    filing_attempts = models.PositiveIntegerField(default=0)
    filing_error = models.TextField(blank=True)
    filing_started_at = models.DateTimeField(null=True, blank=True)  # the last attempt's (sharing.sweeper)
    filed_at = models.DateTimeField(null=True, blank=True)
    # {study_instance_uid: {"series": ..., "sop": ...}} of the SR documents, one per study of the link.
    sr_uids = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"Second opinion {self.pk} on share link {self.link_id}"


class DicomWebToken(models.Model):
    """A bearer capability for the link's DICOMweb root (docs/dicomweb.md), minted by a consultant's
    verified session for viewers that cannot carry its cookie. Only its hash is stored; it answers only
    while its link and session do, and never beyond its own expiry."""

    session = models.ForeignKey(ShareSession, on_delete=models.CASCADE, related_name="dicomweb_tokens")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"DICOMweb token {self.pk} of share session {self.session_id}"


class WriteBack(models.Model):
    """An object the consultant's viewer sent back (an SR, a key object selection, a segmentation), held for
    review until the link's creator files it into the source PACS (sharing.writeback)."""

    class Status(models.TextChoices):
        HELD = "held", "Waiting for review"
        FILING = "filing", "Filing into the source PACS"
        FILED = "filed", "Filed in the source PACS"
        FAILED = "failed", "Filing failed"

    link = models.ForeignKey(ShareLink, on_delete=models.PROTECT, related_name="write_backs")
    kind = models.CharField(max_length=16)  # sr, kos, seg
    sop_class_uid = models.CharField(max_length=64)
    sop_instance_uid = models.CharField(max_length=64)
    study_instance_uid = models.CharField(max_length=64)
    series_instance_uid = models.CharField(max_length=64)
    summary = models.JSONField(default=dict)  # a readable rendering made on arrival
    path = models.CharField(max_length=500)
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    received_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.HELD)
    filed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    filing_attempts = models.PositiveIntegerField(default=0)
    filing_error = models.TextField(blank=True)
    filed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["received_at"]
        constraints = [models.UniqueConstraint(fields=["link", "sop_instance_uid"], name="one_write_back_per_sop")]

    def __str__(self) -> str:
        return f"{self.kind.upper()} {self.sop_instance_uid} sent back on share link {self.link_id}"
