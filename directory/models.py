"""Trusts, their DICOM gateways, and the sharing agreements between trusts."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from .validators import (
    gateway_consistency_errors,
    validate_ae_title,
    validate_dicomweb_password,
    validate_dicomweb_token,
    validate_dicomweb_username,
    validate_ods_code,
    validate_port,
)


class Trust(models.Model):
    class Kind(models.TextChoices):
        TRUST = "trust", "NHS trust"
        ISTC = "istc", "Independent sector treatment centre"
        # The region's own participant: its vendor-neutral archive (docs/region.md). It belongs to no one
        # trust, has agreements like any trust, and its gateways are of kind `vna`.
        REGION = "region", "Regional archive (VNA)"

    ods_code = models.CharField("ODS code", max_length=5, unique=True, validators=[validate_ods_code])
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.TRUST)
    major_trauma_centre = models.BooleanField(default=False)
    patient_id_issuer = models.CharField(
        max_length=64, blank=True, help_text="IssuerOfPatientID for this trust's local MRNs."
    )
    # Reconciliation on arrival (what this trust does to studies it receives); imaging managers may
    # turn parts off, each is on by default.
    reconcile_patient_id = models.BooleanField(
        default=True,
        help_text="Rewrite PatientID/IssuerOfPatientID of arrivals to this trust's local MRN, found by NHS number.",
    )
    prefix_accession = models.BooleanField(
        default=True, help_text="Prefix arrivals' AccessionNumber with the sending trust's ODS code."
    )
    prefix_study_description = models.BooleanField(
        default=True, help_text="Prefix arrivals' StudyDescription with the sending trust's ODS code."
    )
    share_link_max_hours = models.PositiveIntegerField(
        default=336,
        validators=[MinValueValidator(1), MaxValueValidator(24 * 90)],
        help_text="The longest a second-opinion link created at this trust may stay valid.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.ods_code})"


class Gateway(models.Model):
    """A DICOM endpoint of a trust: its PACS or an edge node in front of it."""

    class RetrieveMethod(models.TextChoices):
        C_GET = "c-get", "C-GET"
        C_MOVE = "c-move", "C-MOVE"
        WADO_RS = "wado-rs", "WADO-RS"

    class StoreMethod(models.TextChoices):
        C_STORE = "c-store", "C-STORE"
        STOW_RS = "stow-rs", "STOW-RS"

    class QueryMethod(models.TextChoices):
        C_FIND = "c-find", "C-FIND"
        QIDO_RS = "qido-rs", "QIDO-RS"

    class Kind(models.TextChoices):
        PACS = "pacs", "Trust PACS or edge node"
        VNA = "vna", "Regional archive (VNA)"

    class Status(models.TextChoices):
        UNKNOWN = "unknown", "Not checked yet"
        UP = "up", "Up"
        DOWN = "down", "Down"

    trust = models.ForeignKey(Trust, on_delete=models.PROTECT, related_name="gateways")
    name = models.CharField(max_length=100)
    kind = models.CharField(
        max_length=8,
        choices=Kind.choices,
        default=Kind.PACS,
        editable=False,
        help_text="Follows its trust: the gateways of the region's archive participant are VNAs.",
    )
    ae_title = models.CharField("AE title", max_length=16, blank=True, validators=[validate_ae_title])
    host = models.CharField(max_length=253, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True, validators=[validate_port])
    dicomweb_url = models.URLField("DICOMweb base URL", blank=True)
    dicomweb_username = models.CharField(max_length=150, blank=True, validators=[validate_dicomweb_username])
    dicomweb_password = models.CharField(max_length=256, blank=True, validators=[validate_dicomweb_password])
    dicomweb_token = models.CharField(
        "DICOMweb bearer token", max_length=2048, blank=True, validators=[validate_dicomweb_token]
    )
    verify_tls = models.BooleanField("verify TLS certificates", default=True)
    retrieve_method = models.CharField(max_length=8, choices=RetrieveMethod.choices, default=RetrieveMethod.C_MOVE)
    store_method = models.CharField(max_length=8, choices=StoreMethod.choices, default=StoreMethod.C_STORE)
    query_method = models.CharField(max_length=8, choices=QueryMethod.choices, default=QueryMethod.C_FIND)
    max_concurrency = models.PositiveSmallIntegerField(
        default=4,
        validators=[MinValueValidator(1), MaxValueValidator(64)],
        help_text="Associations or HTTP streams the portal may open at once, across all workers.",
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.UNKNOWN)
    last_checked = models.DateTimeField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # What an imaging manager sets, in the form and the API alike; status fields are the portal's.
    SETTINGS_FIELDS = (
        "name",
        "ae_title",
        "host",
        "port",
        "dicomweb_url",
        "dicomweb_username",
        "dicomweb_password",
        "dicomweb_token",
        "verify_tls",
        "retrieve_method",
        "store_method",
        "query_method",
        "max_concurrency",
    )

    class Meta:
        ordering = ["trust__name", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["trust", "name"],
                name="gateway_unique_name_per_trust",
                violation_error_message="This trust already has a gateway with that name.",
            ),
            models.UniqueConstraint(
                fields=["ae_title", "host", "port"],
                condition=~Q(ae_title=""),
                name="gateway_unique_dimse_endpoint",
                violation_error_message="A gateway with this AE title, host and port is already registered.",
            ),
            models.CheckConstraint(
                condition=Q(port__isnull=True) | Q(port__gte=1, port__lte=65535),
                name="gateway_port_range",
                violation_error_message="A port is between 1 and 65535.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.trust.ods_code})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.kind = self.kind_for(self.trust)
        super().save(*args, **kwargs)

    def clean(self) -> None:
        errors = gateway_consistency_errors(self.__dict__)
        if errors:
            raise ValidationError(errors)

    @staticmethod
    def kind_for(trust: Trust) -> str:
        """A gateway's kind follows its trust: the region's archive participant has VNAs, a trust PACS."""
        return Gateway.Kind.VNA if trust.kind == Trust.Kind.REGION else Gateway.Kind.PACS


class SharingAgreement(models.Model):
    """Two trusts that may exchange images, in the directions it names. No agreement, no transfer."""

    trust_a = models.ForeignKey(Trust, on_delete=models.PROTECT, related_name="+")
    trust_b = models.ForeignKey(Trust, on_delete=models.PROTECT, related_name="+")
    a_to_b = models.BooleanField("A may send to B", default=True)
    b_to_a = models.BooleanField("B may send to A", default=True)
    auto_approve_urgent = models.BooleanField(
        default=False, help_text="Urgent and trauma requests from a major trauma centre are approved at once."
    )
    active = models.BooleanField(default=True)
    # Private (proprietary) elements crossing this agreement's boundary (copies.coercion): kept, removed, or
    # removed except the blocks of the private creators named (known ones converted to standard first).
    private_elements = models.CharField(
        max_length=10,
        choices=[("keep", "Keep"), ("remove", "Remove"), ("allow_list", "Remove, except named private creators")],
        default="keep",
    )
    private_creators_kept = models.JSONField(default=list, blank=True)
    # With an identity correction, the holder is sent the corrected instances too, not only the rejection note.
    send_corrected_instances = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["trust_a__name", "trust_b__name"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(trust_a=models.F("trust_b")),
                name="agreement_two_trusts",
                violation_error_message="An agreement is between two different trusts.",
            ),
            models.UniqueConstraint(
                fields=["trust_a", "trust_b"],
                name="agreement_unique_pair",
                violation_error_message="These two trusts already have an agreement.",
            ),
        ]

    def __str__(self) -> str:
        arrows = {(True, True): "⇄", (True, False): "→", (False, True): "←"}
        arrow = arrows.get((self.a_to_b, self.b_to_a), "(no direction)")
        return f"{self.trust_a.ods_code} {arrow} {self.trust_b.ods_code}"

    def clean(self) -> None:
        if self.trust_a_id and self.trust_b_id:
            reverse = SharingAgreement.objects.filter(trust_a=self.trust_b_id, trust_b=self.trust_a_id)
            if reverse.exclude(pk=self.pk).exists():
                raise ValidationError("These two trusts already have an agreement (recorded the other way round).")

    @classmethod
    def between(cls, one: Trust | int, other: Trust | int) -> SharingAgreement | None:
        """The agreement of two trusts, whichever way round it was recorded."""
        a, b = getattr(one, "pk", one), getattr(other, "pk", other)
        return cls.objects.filter(Q(trust_a=a, trust_b=b) | Q(trust_a=b, trust_b=a)).first()

    def allows(self, source: Trust, destination: Trust) -> bool:
        if not self.active:
            return False
        if (source.pk, destination.pk) == (self.trust_a_id, self.trust_b_id):
            return self.a_to_b
        if (source.pk, destination.pk) == (self.trust_b_id, self.trust_a_id):
            return self.b_to_a
        return False


class GatewaySlot(models.Model):
    """One of a gateway's `max_concurrency` permits, shared by every worker and web process through the
    database (directory.slots). Whoever talks to the gateway holds one per association or HTTP stream:
    a transfer, a share link's staging, a second opinion's filing, a forward from the reconciliation
    queue, a search. The slot of a process that died frees itself at `expires_at`."""

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="slots")
    number = models.PositiveSmallIntegerField()
    holder = models.CharField(max_length=128, blank=True, db_index=True)
    # What the slot is used for, for the operations page and the logs: the kind of work and its object.
    work = models.CharField(max_length=16, blank=True)
    subject = models.CharField(max_length=128, blank=True)
    acquired_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["gateway", "number"]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "number"], name="directory_gateway_slot_unique_number")
        ]

    def __str__(self) -> str:
        return f"slot {self.number} of gateway {self.gateway_id} ({self.holder or 'free'})"


class GatewayWaiter(models.Model):
    """Background work that found a gateway full and will ask again: interactive work (a search) gives
    way to it once it has waited a while, so searches can never keep it out for ever."""

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="+")
    subject = models.CharField(max_length=128)
    work = models.CharField(max_length=16)
    since = models.DateTimeField()
    seen_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["gateway", "subject"], name="gateway_waiter_unique_subject")]

    def __str__(self) -> str:
        return f"{self.subject} waiting for gateway {self.gateway_id} since {self.since:%H:%M:%S}"
