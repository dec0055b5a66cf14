"""JSON shapes of share links and second opinions (SPEC section 7)."""

from __future__ import annotations

from rest_framework import serializers

from directory.serializers import TrustField

from .models import SecondOpinion, ShareLink


class ShareLinkCreateSerializer(serializers.Serializer):
    trust = TrustField()
    study_instance_uids = serializers.ListField(
        child=serializers.CharField(max_length=64), allow_empty=False, max_length=20
    )
    recipient_email = serializers.EmailField()
    recipient_name = serializers.CharField(max_length=200)
    expires_in_hours = serializers.IntegerField(min_value=1, required=False)
    allow_download = serializers.BooleanField(default=False)
    allow_write_back = serializers.BooleanField(default=False)
    purpose = serializers.CharField(max_length=2000)


class ShareLinkSerializer(serializers.ModelSerializer):
    trust = serializers.CharField(source="trust.ods_code", read_only=True)
    created_by = serializers.EmailField(source="created_by.email", read_only=True)
    state = serializers.CharField(read_only=True)
    staging = serializers.SerializerMethodField()

    class Meta:
        model = ShareLink
        fields = [
            "id",
            "trust",
            "study_instance_uids",
            "recipient_email",
            "recipient_name",
            "purpose",
            "allow_download",
            "allow_write_back",
            "created_by",
            "created_at",
            "expires_at",
            "revoked_at",
            "locked_at",
            "state",
            "staging",
        ]

    def get_staging(self, link: ShareLink) -> dict:
        return {
            "status": link.staging_status,
            "instances_total": link.instances_total,
            "instances_staged": link.instances_staged,
            "error": link.staging_error,
        }


class ShareLinkCreatedSerializer(ShareLinkSerializer):
    """The answer to POST: the only time the URL (which holds the token) is ever shown."""

    url = serializers.CharField(read_only=True)

    class Meta(ShareLinkSerializer.Meta):
        fields = [*ShareLinkSerializer.Meta.fields, "url"]


class SecondOpinionSerializer(serializers.ModelSerializer):
    class Meta:
        model = SecondOpinion
        fields = [
            "id",
            "text",
            "conclusion",
            "urgent",
            "consultant_name",
            "registration_number",
            "created_at",
            "filing_status",
            "filing_error",
            "filed_at",
            "sr_uids",
        ]


class ShareLinkAccessSerializer(serializers.Serializer):
    """One use of a link, read from its audit event."""

    timestamp = serializers.DateTimeField()
    client_ip = serializers.IPAddressField(allow_null=True)
    event_id = serializers.CharField()
    outcome = serializers.IntegerField()
    what = serializers.SerializerMethodField()
    series_uid = serializers.SerializerMethodField()

    def get_what(self, event) -> str:
        return str(event.detail.get("what") or ("series view" if event.detail.get("series_uid") else ""))

    def get_series_uid(self, event) -> str:
        return str(event.detail.get("series_uid", ""))
