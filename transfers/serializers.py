"""JSON shape of a transfer (SPEC section 7): trusts by ODS code, progress counted from the ledger."""

from __future__ import annotations

from rest_framework import serializers

from directory.serializers import TrustField
from portal.api import ObjectIdField

from .models import Priority, Transfer


class ProgressSerializer(serializers.Serializer):
    instances_total = serializers.IntegerField()
    instances_done = serializers.IntegerField()
    instances_failed = serializers.IntegerField()
    bytes_done = serializers.IntegerField()


class TransferErrorSerializer(serializers.Serializer):
    error = serializers.CharField()
    sop_instance_uid = serializers.CharField(required=False)
    study_instance_uid = serializers.CharField(required=False)


class TransferSerializer(serializers.ModelSerializer):
    source_trust = TrustField(source="source")
    destination_trust = TrustField(source="destination")
    study_instance_uids = serializers.ListField(
        child=serializers.CharField(max_length=64), allow_empty=False, max_length=100
    )
    priority = serializers.ChoiceField(choices=Priority.choices)
    reason = serializers.CharField(max_length=2000)
    progress = serializers.SerializerMethodField()
    errors = TransferErrorSerializer(many=True, read_only=True)
    requested_by = serializers.EmailField(source="requested_by.email", read_only=True)

    class Meta:
        model = Transfer
        fields = [
            "id",
            "source_trust",
            "destination_trust",
            "study_instance_uids",
            "priority",
            "reason",
            "status",
            "progress",
            "errors",
            "requested_by",
            "created_at",
            "completed_at",
        ]
        read_only_fields = ["status", "created_at", "completed_at"]

    def get_progress(self, transfer: Transfer) -> ProgressSerializer:
        return ProgressSerializer(
            {
                name: getattr(transfer, name, 0) or 0
                for name in ("instances_total", "instances_done", "instances_failed", "bytes_done")
            }
        ).data


class GatewayQueueSerializer(serializers.Serializer):
    gateway = serializers.IntegerField(source="gateway.pk")
    trust = serializers.CharField(source="gateway.trust.ods_code")
    name = serializers.CharField(source="gateway.name")
    ae_title = serializers.CharField(source="gateway.ae_title")
    max_concurrency = serializers.IntegerField(source="gateway.max_concurrency")
    queued = serializers.IntegerField()
    running = serializers.IntegerField()
    oldest_waiting = serializers.DateTimeField(allow_null=True)
    slots_in_use = serializers.IntegerField(help_text="connections the portal holds open to it now")


class OperationsSerializer(serializers.Serializer):
    gateways = GatewayQueueSerializer(many=True)
    stuck = TransferSerializer(many=True)
    failed_recently = TransferSerializer(many=True, source="problems")


class BulkChangeSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=["cancel", "retry"])
    transfers = serializers.ListField(child=ObjectIdField(), allow_empty=False, max_length=200)
