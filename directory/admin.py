"""Admin for trusts, gateways and agreements."""

from django.contrib import admin

from audit.admin import AuditedAdminMixin
from audit.codes import EventType

from .models import Gateway, SharingAgreement, Trust


class GatewayInline(admin.TabularInline):
    model = Gateway
    extra = 0
    fields = ["name", "kind", "ae_title", "host", "port", "dicomweb_url", "status"]
    readonly_fields = ["kind", "status"]


@admin.register(Trust)
class TrustAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["ods_code", "name", "kind", "major_trauma_centre"]
    list_filter = ["kind", "major_trauma_centre"]
    search_fields = ["ods_code", "name"]
    inlines = [GatewayInline]


@admin.register(Gateway)
class GatewayAdmin(AuditedAdminMixin, admin.ModelAdmin):
    audit_event_type = EventType.NETWORK_CONFIGURATION
    list_display = ["name", "trust", "kind", "ae_title", "host", "port", "status", "last_checked", "latency_ms"]
    list_filter = ["kind", "status", "retrieve_method", "store_method", "trust"]
    search_fields = ["name", "ae_title", "host", "trust__ods_code"]
    readonly_fields = ["kind", "status", "last_checked", "latency_ms", "last_error"]


@admin.register(SharingAgreement)
class SharingAgreementAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "trust_a", "trust_b", "a_to_b", "b_to_a", "auto_approve_urgent", "active"]
    list_filter = ["active", "auto_approve_urgent"]
    autocomplete_fields = ["trust_a", "trust_b"]
