"""JSON shape of a reconciliation queue item and of a resolution."""

from __future__ import annotations

from rest_framework import serializers

from .models import StudyReconciliation


class ReconciliationSerializer(serializers.ModelSerializer):
    destination_trust = serializers.CharField(source="destination.ods_code", read_only=True)
    source_trust = serializers.CharField(source="transfer.source.ods_code", read_only=True)
    resolved_by = serializers.EmailField(source="resolved_by.email", read_only=True, allow_null=True)
    held_instances = serializers.IntegerField(read_only=True)

    class Meta:
        model = StudyReconciliation
        fields = [
            "id",
            "transfer",
            "destination_trust",
            "source_trust",
            "study_instance_uid",
            "outcome",
            "hold_reason",
            "detail",
            "nhs_number",
            "patient_name",
            "birth_date",
            "sex",
            "source_patient_id",
            "source_issuer",
            "candidates",
            "patient_id",
            "issuer",
            "new_patient",
            "held_instances",
            "resolved_by",
            "resolved_at",
            "forwarded_at",
            "forward_error",
            "created_at",
        ]
        read_only_fields = fields


class ResolveSerializer(serializers.Serializer):
    patient_id = serializers.CharField(max_length=64, required=False, allow_blank=True, trim_whitespace=True)
    issuer = serializers.CharField(max_length=64, required=False, allow_blank=True)
    new_patient = serializers.BooleanField(
        required=False, default=False, help_text="Accept as a new patient (no local record yet)."
    )
