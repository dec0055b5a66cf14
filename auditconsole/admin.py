"""The admin of the audit store's own rows: events, digests and alerts, read-only, for regional administrators."""

from __future__ import annotations

from django.contrib import admin

from accounts import permissions as perms
from audit import catalogue
from audit.models import AuditAlert, AuditEvent, ChainDigest


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
