"""The region's record of each exchanged study: what the receiving trust's PACS holds of it, the KOS
manifest (XDS-I.b) made for it, and what the FHIR ImagingStudy is drawn from (docs/fhir.md)."""

from __future__ import annotations

from django.db import models


class StudyManifest(models.Model):
    """One study of one transfer that reached its destination, as the destination's PACS lists it."""

    transfer = models.ForeignKey("transfers.Transfer", on_delete=models.PROTECT, related_name="manifests")
    holder = models.ForeignKey(
        "directory.Trust", on_delete=models.PROTECT, related_name="+", help_text="The trust holding the study."
    )
    sender = models.ForeignKey(
        "directory.Trust", on_delete=models.PROTECT, related_name="+", help_text="The trust that sent it."
    )
    gateway = models.ForeignKey("directory.Gateway", on_delete=models.PROTECT, related_name="+")
    study_instance_uid = models.CharField(max_length=64, db_index=True)
    # The patient as the holder files them (after reconciliation), and the region's key.
    nhs_number = models.CharField(max_length=10, blank=True, db_index=True)
    patient_id = models.CharField(max_length=64, blank=True)
    issuer_of_patient_id = models.CharField(max_length=64, blank=True)
    patient_name = models.CharField(max_length=200, blank=True)
    birth_date = models.CharField(max_length=8, blank=True)
    sex = models.CharField(max_length=1, blank=True)
    study_date = models.CharField(max_length=8, blank=True)
    study_time = models.CharField(max_length=16, blank=True)
    accession_number = models.CharField(max_length=64, blank=True)
    description = models.CharField(max_length=200, blank=True)
    # [{"uid", "modality", "number", "description", "instances": [{"uid", "sop_class", "number"}]}]
    series = models.JSONField(default=list)
    number_of_instances = models.PositiveIntegerField(default=0)
    kos_sop_instance_uid = models.CharField("KOS SOP Instance UID", max_length=64)
    kos = models.BinaryField("KOS manifest (DICOM Part 10)")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["transfer", "study_instance_uid"], name="manifest_unique_transfer_study")
        ]

    def __str__(self) -> str:
        return f"manifest {self.pk}: {self.study_instance_uid} at {self.holder_id}"

    @property
    def modalities(self) -> list[str]:
        return sorted({s["modality"] for s in self.series if s.get("modality")})
