"""JSON shape of a request (SPEC section 7): trusts by ODS code; candidates as the source PACS answered."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field, inline_serializer
from rest_framework import serializers

from directory.serializers import TrustField
from transfers.models import Priority

from .models import PullRequest, Sex
from .progress import request_stage


class RequestSerializer(serializers.ModelSerializer):
    requesting_trust = TrustField(required=False, allow_null=True)
    source_trust = TrustField()
    # Validated by the service (dicomkit.nhs), so the message names the check digit.
    nhs_number = serializers.CharField(max_length=20)
    family_name = serializers.CharField(max_length=200)
    given_name = serializers.CharField(max_length=200)
    sex = serializers.ChoiceField(choices=Sex.choices)
    modalities = serializers.ListField(child=serializers.CharField(max_length=16), required=False, max_length=20)
    priority = serializers.ChoiceField(choices=Priority.choices, default=Priority.ROUTINE)
    reason = serializers.CharField(max_length=2000)
    requested_by = serializers.EmailField(source="requested_by.email", read_only=True)
    decided_by = serializers.EmailField(source="decided_by.email", read_only=True, allow_null=True)
    transfer = serializers.PrimaryKeyRelatedField(read_only=True)
    stage = serializers.SerializerMethodField(
        help_text="Where the request stands through to the images' arrival, and who acts next (pulls.progress)."
    )

    class Meta:
        model = PullRequest
        fields = [
            "id",
            "requesting_trust",
            "source_trust",
            "nhs_number",
            "family_name",
            "given_name",
            "birth_date",
            "sex",
            "date_from",
            "date_to",
            "modalities",
            "priority",
            "reason",
            "status",
            "candidates",
            "candidates_error",
            "approved_study_uids",
            "auto_approved",
            "decided_by",
            "decided_at",
            "decline_reason",
            "transfer",
            "requested_by",
            "escalated_at",
            "created_at",
            "stage",
        ]
        read_only_fields = [
            "status",
            "candidates",
            "candidates_error",
            "approved_study_uids",
            "auto_approved",
            "decided_at",
            "decline_reason",
            "escalated_at",
            "created_at",
        ]

    @extend_schema_field(
        inline_serializer(
            "RequestStage",
            {"key": serializers.CharField(), "label": serializers.CharField(), "next_step": serializers.CharField()},
        )
    )
    def get_stage(self, request: PullRequest) -> dict[str, str]:
        return request_stage(request).as_json()


class ApproveSerializer(serializers.Serializer):
    study_instance_uids = serializers.ListField(
        child=serializers.CharField(max_length=64),
        required=False,
        max_length=100,
        help_text="The candidate studies to send; omitted or empty: all of them.",
    )


class DeclineSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)
