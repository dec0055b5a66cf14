from django.contrib import admin

from accounts import permissions as perms
from audit.admin import AuditedAdminMixin

from .models import SecondOpinion, ShareLink


@admin.register(ShareLink)
class ShareLinkAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["pk", "trust", "recipient_email", "created_by", "expires_at", "revoked_at", "staging_status"]
    list_filter = ["staging_status", "trust"]
    # Read-only: links are made and revoked through the service, which audits them.
    exclude = ["token_hash", "code_hash"]

    def get_queryset(self, request):
        # As everywhere else: no regional-administrator bypass to who was sent which patient's images.
        return perms.visible_share_links(request.user, super().get_queryset(request))

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(SecondOpinion)
class SecondOpinionAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["pk", "link", "consultant_name", "urgent", "filing_status", "created_at"]
    list_filter = ["filing_status", "urgent"]

    def get_queryset(self, request):
        links = perms.visible_share_links(request.user, ShareLink.objects.all())
        return super().get_queryset(request).filter(link__in=links)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
