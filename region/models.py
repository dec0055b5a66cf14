"""Forwarding rules to the regional archive, and bulk migrations between archives (docs/region.md)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class ForwardingRule(models.Model):
    """A trust's standing instruction: copy what arrives (all of it, one modality, or what trauma pulls
    bring in) to the regional archive, as background transfers below every clinician's work."""

    class Trigger(models.TextChoices):
        EVERY_ARRIVAL = "every_arrival", "Every arrival"
        MODALITY = "modality", "Every arriving study of one modality"
        TRAUMA_PULL = "trauma_pull", "Every study a trauma pull brings in"

    trust = models.ForeignKey("directory.Trust", on_delete=models.PROTECT, related_name="forwarding_rules")
    archive = models.ForeignKey("directory.Trust", on_delete=models.PROTECT, related_name="+")
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    modality = models.CharField(max_length=16, blank=True, help_text="For the modality trigger: CT, MR, CR…")
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["trust__ods_code", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["trust", "archive", "trigger", "modality"],
                name="forwarding_rule_unique",
                violation_error_message="This trust already has that rule.",
            ),
            models.CheckConstraint(
                condition=Q(trigger="modality", modality__gt="") | (~Q(trigger="modality") & Q(modality="")),
                name="forwarding_rule_modality_only_for_modality_trigger",
                violation_error_message="A modality rule names its modality; the others name none.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.trust.ods_code} → {self.archive.ods_code}: {self.describe()}"

    def describe(self) -> str:
        if self.trigger == self.Trigger.MODALITY:
            return f"every {self.modality} study that arrives"
        if self.trigger == self.Trigger.TRAUMA_PULL:
            return "every study a trauma pull brings in"
        return "every arrival"


class Forward(models.Model):
    """One arrival copied on to an archive: the background transfer that does it. One per arrival and
    archive, however many rules matched or however often the arrival's end is announced."""

    arrival = models.ForeignKey("transfers.Transfer", on_delete=models.CASCADE, related_name="forwards")
    archive = models.ForeignKey("directory.Trust", on_delete=models.PROTECT, related_name="+")
    rules = models.ManyToManyField(ForwardingRule, related_name="forwards")
    transfer = models.OneToOneField(
        "transfers.Transfer", on_delete=models.PROTECT, null=True, blank=True, related_name="forwarded_from"
    )
    error = models.TextField(blank=True, help_text="Why no transfer could be made (no agreement, no gateway).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [models.UniqueConstraint(fields=["arrival", "archive"], name="forward_once_per_archive")]

    def __str__(self) -> str:
        return f"forward of transfer {self.arrival_id} to {self.archive_id}"


class MigrationJob(models.Model):
    """Copy a whole archive, or a date range of it, from one gateway to another: throttled, within allowed
    hours, resumable study by study, compared study by study at the end."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        LISTING = "listing", "Listing the source"
        COPYING = "copying", "Copying"
        WAITING = "waiting", "Waiting for its allowed hours"
        COMPARING = "comparing", "Comparing source and destination"
        PAUSED = "paused", "Paused"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE = (Status.QUEUED, Status.LISTING, Status.COPYING, Status.WAITING, Status.COMPARING)
    FINISHED = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)

    name = models.CharField(max_length=200)
    source = models.ForeignKey("directory.Gateway", on_delete=models.PROTECT, related_name="+")
    destination = models.ForeignKey("directory.Gateway", on_delete=models.PROTECT, related_name="+")
    date_from = models.DateField(null=True, blank=True)
    date_to = models.DateField(null=True, blank=True)
    max_instances_per_second = models.FloatField(
        default=0, help_text="Throttle: instances a second at most (0: as fast as the gateways' slots allow)."
    )
    allowed_hours = models.CharField(
        max_length=200,
        blank=True,
        help_text='When it may run, local time, e.g. "mon-fri 19:00-07:00, sat-sun". Blank: any time.',
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED, db_index=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    listed = models.BooleanField(default=False, help_text="Every study of the range has its row.")
    # The running worker's lease, as a transfer's: a second delivery waits while it is fresh.
    lease_owner = models.CharField(max_length=128, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Seconds spent copying (throttle pauses included, waits for hours or clinicians' work not): the rate's base.
    copy_seconds = models.FloatField(default=0)
    passes = models.PositiveIntegerField(default=0, help_text="Times a worker has taken it up.")
    yields = models.PositiveIntegerField(default=0, help_text="Times it stood aside for clinicians' work.")
    last_error = models.TextField(blank=True)
    # {"studies": n, "ok": n, "missing": n, "extra": n, "count_mismatch": n, "hash_mismatch": n, "failed": n}
    report = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"migration {self.pk} {self.name} ({self.status})"


class MigrationStudy(models.Model):
    """One study of a migration: the progress saved per study, and its line of the comparison report."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        COPIED = "copied", "Copied"
        FAILED = "failed", "Failed"
        EXTRA = "extra", "Only at the destination"

    class Verdict(models.TextChoices):
        OK = "ok", "Same at both"
        MISSING = "missing", "Missing at the destination"
        EXTRA = "extra", "Only at the destination"
        COUNT_MISMATCH = "count_mismatch", "Instance counts differ"
        HASH_MISMATCH = "hash_mismatch", "Same count, different instances"

    job = models.ForeignKey(MigrationJob, on_delete=models.CASCADE, related_name="studies")
    study_instance_uid = models.CharField(max_length=64)
    study_date = models.CharField(max_length=8, blank=True)
    modalities = models.CharField(max_length=64, blank=True)
    source_instances = models.PositiveIntegerField(null=True, blank=True, help_text="As the source's index listed.")
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    instances_copied = models.PositiveIntegerField(default=0)
    instances_failed = models.PositiveIntegerField(default=0)
    bytes_copied = models.BigIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    copied_at = models.DateTimeField(null=True, blank=True)
    # The comparison: each side's own index, counted and hashed (sha256 of the sorted SOP Instance UIDs).
    compared_source_count = models.PositiveIntegerField(null=True, blank=True)
    compared_destination_count = models.PositiveIntegerField(null=True, blank=True)
    source_hash = models.CharField(max_length=64, blank=True)
    destination_hash = models.CharField(max_length=64, blank=True)
    verdict = models.CharField(max_length=16, choices=Verdict.choices, blank=True)

    class Meta:
        ordering = ["job", "pk"]
        constraints = [models.UniqueConstraint(fields=["job", "study_instance_uid"], name="migration_study_unique")]
        indexes = [models.Index(fields=["job", "state"], name="migration_study_state")]

    def __str__(self) -> str:
        return f"{self.study_instance_uid} ({self.state})"
