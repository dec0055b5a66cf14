"""JSON shapes of the directory (SPEC section 7): trusts are referred to by ODS code everywhere."""

from __future__ import annotations

from rest_framework import serializers

from .models import Gateway, SharingAgreement, Trust


class TrustField(serializers.SlugRelatedField):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(slug_field="ods_code", queryset=Trust.objects.all(), **kwargs)


class GatewayHealthSerializer(serializers.ModelSerializer):
    class Meta:
        model = Gateway
        fields = ["id", "name", "kind", "status", "last_checked", "latency_ms"]


class TrustSerializer(serializers.ModelSerializer):
    gateways = GatewayHealthSerializer(many=True, read_only=True)

    class Meta:
        model = Trust
        fields = [
            "ods_code",
            "name",
            "kind",
            "major_trauma_centre",
            "patient_id_issuer",
            "reconcile_patient_id",
            "prefix_accession",
            "prefix_study_description",
            "share_link_max_hours",
            "gateways",
        ]


class GatewaySerializer(serializers.ModelSerializer):
    trust = TrustField()

    class Meta:
        model = Gateway
        fields = [
            "id",
            "trust",
            *Gateway.SETTINGS_FIELDS,
            "kind",
            "status",
            "last_checked",
            "latency_ms",
            "last_error",
        ]
        read_only_fields = ["kind", "status", "last_checked", "latency_ms", "last_error"]
        extra_kwargs = {"dicomweb_password": {"write_only": True}, "dicomweb_token": {"write_only": True}}


class AgreementSerializer(serializers.ModelSerializer):
    trust_a = TrustField()
    trust_b = TrustField()
    private_creators_kept = serializers.ListField(
        child=serializers.RegexField(r"^[^\\\x00-\x1f\x7f]{1,64}$"),
        required=False,
        max_length=100,
        help_text="Private creators whose blocks cross the boundary under private_elements=allow_list.",
    )

    class Meta:
        model = SharingAgreement
        fields = [
            "id",
            "trust_a",
            "trust_b",
            "a_to_b",
            "b_to_a",
            "auto_approve_urgent",
            "active",
            "private_elements",
            "private_creators_kept",
            "send_corrected_instances",
        ]


class EchoResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    latency_ms = serializers.FloatField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
