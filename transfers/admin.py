"""Read-only admin views of transfers and their ledgers, for regional administrators investigating one."""

from django.contrib import admin

from accounts import permissions as perms

from .models import Transfer, TransferInstance


class TransferInstanceInline(admin.TabularInline):
    model = TransferInstance
    fields = ["sop_instance_uid", "series_instance_uid", "state", "size", "attempts", "last_error"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Transfer)
class TransferAdmin(admin.ModelAdmin):
    list_display = ["id", "source", "destination", "priority", "status", "requested_by", "created_at", "completed_at"]
    list_filter = ["status", "priority"]
    readonly_fields = [field.name for field in Transfer._meta.fields]
    inlines = [TransferInstanceInline]

    def get_queryset(self, request):
        return perms.visible_transfers(request.user, super().get_queryset(request))

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
