"""What the receiver took in and refused, for imaging managers and operators. Read-only: the files are
the record, and these rows mirror them."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from .models import QuarantinedInstance, ReceivedInstance


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(ReceivedInstance)
class ReceivedInstanceAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "calling_ae", "study_instance_uid", "sop_instance_uid", "size", "duplicate"]
    list_filter = ["calling_ae", "duplicate", ("pixel_warning", admin.EmptyFieldListFilter)]
    search_fields = ["study_instance_uid", "sop_instance_uid", "calling_ae", "job_label"]
    date_hierarchy = "received_at"


@admin.register(QuarantinedInstance)
class QuarantinedInstanceAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "calling_ae", "status_hex", "reason", "sop_instance_uid"]
    list_filter = ["calling_ae"]
    search_fields = ["reason", "sop_instance_uid", "calling_ae", "path"]
    date_hierarchy = "received_at"
