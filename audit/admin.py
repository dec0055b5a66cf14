"""The admin: audit events, digests and alerts read-only; and the mixin that audits other models' admins."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from accounts import permissions as perms

from . import catalogue
from .codes import Action, EventID, EventType
from .context import actor_from_request
from .models import AuditAlert, AuditEvent, ChainDigest
from .services import record_event


class AuditedAdminMixin:
    """Every add, change and delete made in this admin goes on the audit trail (110113 Security Alert).

    Hooks Django's own change log (`log_addition`, `log_change`, `log_deletions`), which the admin calls
    inside the transaction of the change, after the object and its inlines are saved; the admin's change
    message names the fields changed, never their values, so secrets stay out of the record.
    """

    audit_event_type: str = EventType.SECURITY_CONFIGURATION

    def audit_trusts(self, obj: Any) -> tuple[str, str]:
        """(trust, other trust) the object belongs to, found by the usual field names."""
        if hasattr(obj, "ods_code"):
            return obj.ods_code, ""
        if getattr(obj, "trust_id", None):
            return obj.trust.ods_code, ""
        if getattr(obj, "trust_a_id", None) and getattr(obj, "trust_b_id", None):
            return obj.trust_a.ods_code, obj.trust_b.ods_code
        return "", ""

    def _audit(self, request: HttpRequest, obj: Any, action: str, message: Any) -> None:
        trust, peer = self.audit_trusts(obj)
        record_event(
            event_id=EventID.SECURITY_ALERT,
            event_type=self.audit_event_type,
            action=action,
            actor=actor_from_request(request),
            trust=trust,
            peer_trust=peer,
            detail={
                "via": "admin",
                "model": obj._meta.label_lower,
                "object": str(obj),
                "id": obj.pk,
                "change": message,
            },
        )

    def log_addition(self, request, obj, message):
        self._audit(request, obj, Action.CREATE, message)
        return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        self._audit(request, obj, Action.UPDATE, message)
        return super().log_change(request, obj, message)

    def log_deletions(self, request, queryset):
        for obj in queryset:
            self._audit(request, obj, Action.DELETE, [{"deleted": {}}])
        return super().log_deletions(request, queryset)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Regional administrators may look; nobody may add, change or delete, whatever their Django permissions."""

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_module_permission(self, request) -> bool:
        return perms.is_regional_admin(request.user)

    def has_view_permission(self, request, obj=None) -> bool:
        return perms.is_regional_admin(request.user)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("seq", "timestamp", "event_id", "event_type", "action", "outcome", "actor_label", "trust")
    list_filter = ("event_id", "action", "outcome", "actor_type")
    search_fields = ("=nhs_number", "=patient_id", "actor_label")
    ordering = ("-timestamp", "-seq")
    show_full_result_count = False  # counting millions of rows on every page is what makes admins slow

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        if request.method == "GET" and getattr(response, "status_code", 0) == 200:
            catalogue.AUDIT_LOG_READ.record(
                request=request, detail={"via": "admin", "query": dict(request.GET.items())}
            )
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        if getattr(response, "status_code", 0) == 200:
            event = AuditEvent.objects.filter(pk=object_id).first()
            catalogue.AUDIT_LOG_READ.record(
                request=request,
                nhs_number=event.nhs_number if event else "",
                detail={"via": "admin", "seq": event.seq if event else None},
            )
        return response


@admin.register(ChainDigest)
class ChainDigestAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "head_seq", "algorithm", "chain_ok", "path")


@admin.register(AuditAlert)
class AuditAlertAdmin(ReadOnlyAdmin):
    """Alerts are acknowledged in the IG console, where it is recorded who did it and why."""

    list_display = ("last_seen", "kind", "trust", "severity", "status", "subject_label", "event_count")
    list_filter = ("kind", "status", "severity", "trust")
