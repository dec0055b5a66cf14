"""JSON shapes of the register, corrections and the mapping table."""

from __future__ import annotations

from rest_framework import serializers

from directory.serializers import TrustField

from .models import Correction, CorrectionDelivery, CorrectionKind, ProcedureMapping, RejectionReason, UnmappedProcedure

UID = {"max_length": 64, "allow_blank": False}


class DeliverySerializer(serializers.ModelSerializer):
    holder = serializers.CharField(source="holder.ods_code", read_only=True)
    gateway = serializers.CharField(source="gateway.name", read_only=True)
    acknowledged_by = serializers.EmailField(source="acknowledged_by.email", read_only=True, allow_null=True)

    class Meta:
        model = CorrectionDelivery
        fields = [
            "id",
            "holder",
            "gateway",
            "state",
            "instances",
            "note_sop_instance_uid",
            "corrected_sent",
            "attempts",
            "last_error",
            "sent_at",
            "acknowledged_by",
            "acknowledged_at",
        ]
        read_only_fields = fields


class CorrectionSerializer(serializers.ModelSerializer):
    source_trust = serializers.CharField(source="source.ods_code", read_only=True)
    created_by = serializers.EmailField(source="created_by.email", read_only=True)
    reason_meaning = serializers.CharField(source="get_reason_display", read_only=True)
    deliveries = DeliverySerializer(many=True, read_only=True)

    class Meta:
        model = Correction
        fields = [
            "id",
            "source_trust",
            "kind",
            "reason",
            "reason_meaning",
            "comment",
            "study_instance_uid",
            "series_instance_uids",
            "sop_instance_uids",
            "corrected",
            "nhs_number",
            "created_by",
            "created_at",
            "deliveries",
        ]
        read_only_fields = fields


class IdentitySerializer(serializers.Serializer):
    patient_id = serializers.CharField(max_length=64, required=False, allow_blank=True)
    issuer = serializers.CharField(max_length=64, required=False, allow_blank=True)
    patient_name = serializers.CharField(max_length=64, required=False, allow_blank=True)
    birth_date = serializers.CharField(max_length=10, required=False, allow_blank=True)
    sex = serializers.CharField(max_length=1, required=False, allow_blank=True)
    nhs_number = serializers.CharField(max_length=12, required=False, allow_blank=True)


class CorrectionCreateSerializer(serializers.Serializer):
    source_trust = TrustField()
    study_instance_uid = serializers.CharField(**UID)
    kind = serializers.ChoiceField(choices=CorrectionKind.choices)
    reason = serializers.ChoiceField(choices=RejectionReason.choices, required=False, allow_blank=True)
    comment = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    series_instance_uids = serializers.ListField(child=serializers.CharField(**UID), required=False, max_length=1000)
    sop_instance_uids = serializers.ListField(child=serializers.CharField(**UID), required=False, max_length=10000)
    corrected = IdentitySerializer(required=False)


class MappingSerializer(serializers.ModelSerializer):
    class Meta:
        model = ProcedureMapping
        fields = [
            "id",
            "sender_scheme",
            "sender_code",
            "description_pattern",
            "nicip_code",
            "nicip_meaning",
            "snomed_code",
            "snomed_meaning",
            "updated_at",
        ]
        read_only_fields = ["id", "updated_at"]


class UnmappedSerializer(serializers.ModelSerializer):
    source = serializers.CharField(source="source.ods_code", read_only=True)

    class Meta:
        model = UnmappedProcedure
        fields = [
            "source",
            "sender_scheme",
            "sender_code",
            "sender_meaning",
            "study_description",
            "studies",
            "first_seen",
            "last_seen",
        ]
        read_only_fields = fields


class HoldingSerializer(serializers.Serializer):
    """One trust's copies of one study under one identity (copies.selectors.Holding)."""

    holder = serializers.CharField()
    holder_name = serializers.CharField()
    source = serializers.CharField()
    study_instance_uid = serializers.CharField()
    patient_id = serializers.CharField()
    issuer = serializers.CharField()
    accession_number = serializers.CharField()
    nhs_number = serializers.CharField()
    patient_name = serializers.CharField()
    study_description = serializers.CharField()
    state = serializers.CharField()
    instances = serializers.IntegerField()
    since = serializers.DateTimeField(allow_null=True)
    last_stored = serializers.DateTimeField(allow_null=True)
    transfers = serializers.ListField(child=serializers.IntegerField())
    via = serializers.ListField(child=serializers.CharField())


class HoldingListSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    results = HoldingSerializer(many=True)


class MappingTableSerializer(serializers.Serializer):
    trust = serializers.CharField()
    mappings = MappingSerializer(many=True)
    unmapped = UnmappedSerializer(many=True)


class MappingUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="The CSV table (replaces the trust's whole table).")


class MappingUploadedSerializer(serializers.Serializer):
    trust = serializers.CharField()
    rows = serializers.IntegerField()
