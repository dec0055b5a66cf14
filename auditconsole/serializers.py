"""JSON shapes of audit events, alerts and verification, and the validation of search parameters."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from rest_framework import serializers

from audit.codes import ActorType, EventID, Outcome, display
from audit.exports import FORMATS
from audit.models import AuditAlert, AuditEvent
from dicomkit import nhs

from .selectors import EventFilters

UID_PATTERN = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def parse_moment(value: str, *, end_of_day: bool) -> datetime:
    """A date (a whole day, local time) or a date-time (local time unless it names a zone)."""
    value = value.strip()
    try:
        day = parse_date(value) if len(value) == 10 else None
        moment = parse_datetime(value) if day is None else None
    except ValueError:  # well formed but impossible, e.g. 2026-02-30
        day = moment = None
    if day is not None:
        moment = datetime.combine(day + timedelta(days=1) if end_of_day else day, time.min)
    if moment is None:
        raise serializers.ValidationError("Enter a date (2026-03-01) or a date and time (2026-03-01T14:30).")
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


class AuditQuerySerializer(serializers.Serializer):
    """The search parameters of GET audit-events/ (SPEC section 7) and of the IG console."""

    nhs_number = serializers.CharField(required=False, allow_blank=True, max_length=20)
    study_instance_uid = serializers.CharField(required=False, allow_blank=True, max_length=64)
    patient_id = serializers.CharField(required=False, allow_blank=True, max_length=64)
    user = serializers.CharField(required=False, allow_blank=True, max_length=254)
    trust = serializers.CharField(required=False, allow_blank=True, max_length=5)
    event_id = serializers.CharField(required=False, allow_blank=True, max_length=200)
    event_type = serializers.CharField(required=False, allow_blank=True, max_length=6)
    outcome = serializers.ChoiceField(choices=Outcome.choices, required=False, allow_blank=True)
    actor_type = serializers.ChoiceField(choices=ActorType.choices, required=False, allow_blank=True)
    since = serializers.CharField(required=False, allow_blank=True, help_text="Date or date-time, inclusive.")
    until = serializers.CharField(
        required=False, allow_blank=True, help_text="Date (the whole day included) or date-time (exclusive)."
    )
    format = serializers.ChoiceField(choices=["json", "api", *FORMATS], required=False, default="json")

    def validate_nhs_number(self, value: str) -> str:
        if not value.strip():
            return ""
        try:
            return nhs.normalise(value)
        except nhs.InvalidNHSNumber as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def validate_study_instance_uid(self, value: str) -> str:
        value = value.strip()
        if value and not UID_PATTERN.match(value):
            raise serializers.ValidationError("A Study Instance UID is digits separated by dots, e.g. 1.2.826.0.1.")
        return value

    def validate_trust(self, value: str) -> str:
        return value.strip().upper()

    def validate_event_id(self, value: str) -> list[str]:
        codes = [code.strip() for code in value.split(",") if code.strip()]
        unknown = [code for code in codes if code not in EventID.values]
        if unknown:
            raise serializers.ValidationError(f"Unknown event ID {', '.join(unknown)}; use the DCM codes of SPEC §4.")
        return codes

    def validate_since(self, value: str) -> datetime | None:
        return parse_moment(value, end_of_day=False) if value.strip() else None

    def validate_until(self, value: str) -> datetime | None:
        return parse_moment(value, end_of_day=True) if value.strip() else None

    def validate(self, attrs: dict) -> dict:
        since, until = attrs.get("since"), attrs.get("until")
        if since and until and since >= until:
            raise serializers.ValidationError({"until": "The end of the range must come after its start."})
        return attrs

    def filters(self) -> EventFilters:
        data = self.validated_data
        outcome = data.get("outcome")
        return EventFilters(
            nhs_number=data.get("nhs_number", ""),
            patient_id=data.get("patient_id", "").strip(),
            study_uid=data.get("study_instance_uid", ""),
            user=data.get("user", "").strip(),
            trust=data.get("trust", ""),
            event_ids=tuple(data.get("event_id") or ()),
            event_type=data.get("event_type", "").strip(),
            outcome=int(outcome) if outcome not in (None, "") else None,
            actor_type=data.get("actor_type", ""),
            since=data.get("since"),
            until=data.get("until"),
        )


class ActorSerializer(serializers.Serializer):
    type = serializers.CharField(source="actor_type")
    label = serializers.CharField(source="actor_label")
    ref = serializers.CharField(source="actor_ref")
    user_id = serializers.IntegerField(source="actor_user_id", allow_null=True)


class AuditEventSerializer(serializers.ModelSerializer):
    event = serializers.SerializerMethodField()
    event_type_meaning = serializers.CharField(source="event_type_display")
    actor = ActorSerializer(source="*")
    trusts = serializers.ListField(source="scope", child=serializers.CharField())
    study_instance_uids = serializers.ListField(source="study_uids", child=serializers.CharField())

    class Meta:
        model = AuditEvent
        fields = [
            "seq",
            "timestamp",
            "event_id",
            "event",
            "event_type",
            "event_type_meaning",
            "action",
            "outcome",
            "actor",
            "trust",
            "peer_trust",
            "trusts",
            "nhs_number",
            "patient_id",
            "study_instance_uids",
            "client_ip",
            "user_agent",
            "request_id",
            "reason",
            "detail",
            "hash",
            "prev_hash",
        ]
        read_only_fields = fields

    def get_event(self, event: AuditEvent) -> str:
        return display(event.event_id)


class VerificationSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    events_checked = serializers.IntegerField()
    first_broken_seq = serializers.IntegerField(allow_null=True)
    problem = serializers.CharField()
    head_seq = serializers.IntegerField()
    head_hash = serializers.CharField()
    from_seq = serializers.IntegerField()
    digest_problems = serializers.ListField(
        child=serializers.CharField(),
        help_text="What the signed digest files outside the database show: a head they vouched for that the "
        "database no longer holds, an empty trail, a missing day, a file missing or altered.",
    )
    digests_checked = serializers.IntegerField(
        help_text="Digest files in AUDIT_DIGEST_DIR the database was checked against."
    )


class VerifyRequestSerializer(serializers.Serializer):
    from_seq = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=2**63 - 1,
        default=1,
        help_text="Verify from this event on (1: the whole chain).",
    )
    since_last_digest = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Walk only the events added since the last daily digest (after checking its head still stands).",
    )


class AuditAlertSerializer(serializers.ModelSerializer):
    kind_meaning = serializers.CharField(source="get_kind_display", read_only=True)
    acknowledged_by = serializers.SlugRelatedField(slug_field="email", read_only=True)
    # A plain string in the schema: an enum named "status" would collide with the gateway's.
    status = serializers.CharField(read_only=True, help_text="open or acknowledged")

    class Meta:
        model = AuditAlert
        fields = [
            "id",
            "kind",
            "kind_meaning",
            "severity",
            "trust",
            "summary",
            "subject_label",
            "nhs_number",
            "event_count",
            "first_seen",
            "last_seen",
            "first_seq",
            "last_seq",
            "status",
            "acknowledged_by",
            "acknowledged_at",
            "note",
            "detail",
        ]
        read_only_fields = fields


class AcknowledgeSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=2000, help_text="What was found and done; kept with the alert.")
