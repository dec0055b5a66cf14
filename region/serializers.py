"""JSON shapes of forwarding rules and migrations: trusts by ODS code, gateways by ID."""

from __future__ import annotations

from rest_framework import serializers

from directory.models import Gateway
from directory.serializers import TrustField

from .models import ForwardingRule, MigrationJob, MigrationStudy


class ForwardingRuleSerializer(serializers.ModelSerializer):
    trust = TrustField()
    archive = TrustField()
    description = serializers.CharField(source="describe", read_only=True)
    created_by = serializers.EmailField(source="created_by.email", read_only=True)

    class Meta:
        model = ForwardingRule
        fields = ["id", "trust", "archive", "trigger", "modality", "active", "description", "created_by", "created_at"]
        read_only_fields = ["active", "created_at"]
        validators: list = []  # the service checks uniqueness (and says so in a sentence)


class ForwardingRuleActiveSerializer(serializers.Serializer):
    active = serializers.BooleanField()


class MigrationJobSerializer(serializers.ModelSerializer):
    source = serializers.PrimaryKeyRelatedField(queryset=Gateway.objects.all())
    destination = serializers.PrimaryKeyRelatedField(queryset=Gateway.objects.all())
    progress = serializers.SerializerMethodField()
    created_by = serializers.EmailField(source="created_by.email", read_only=True)

    class Meta:
        model = MigrationJob
        fields = [
            "id",
            "name",
            "source",
            "destination",
            "date_from",
            "date_to",
            "max_instances_per_second",
            "allowed_hours",
            "status",
            "progress",
            "report",
            "last_error",
            "created_by",
            "created_at",
            "started_at",
            "completed_at",
        ]
        read_only_fields = ["status", "report", "last_error", "created_at", "started_at", "completed_at"]

    def get_progress(self, job: MigrationJob) -> dict:
        from .selectors import migration_progress

        return migration_progress(job).as_dict()


class MigrationStudySerializer(serializers.ModelSerializer):
    class Meta:
        model = MigrationStudy
        fields = [
            "study_instance_uid",
            "study_date",
            "modalities",
            "state",
            "source_instances",
            "instances_copied",
            "instances_failed",
            "bytes_copied",
            "compared_source_count",
            "compared_destination_count",
            "source_hash",
            "destination_hash",
            "verdict",
            "last_error",
        ]
