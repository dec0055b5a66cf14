"""Read-only admin for audit events: nobody alters or removes them through the admin."""

from django.contrib import admin

from .models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("seq", "timestamp", "event_id", "action", "outcome", "actor_label", "trust", "nhs_number")
    list_filter = ("event_id", "action", "outcome", "trust")
    search_fields = ("nhs_number", "actor_label", "patient_id")
    ordering = ("-seq",)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
