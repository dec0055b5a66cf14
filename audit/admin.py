"""The mixin that puts every change made in another model's admin on the audit trail (the admin of the audit
rows themselves is the console's: auditconsole.admin)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from .codes import Action, EventID, EventType
from .context import actor_from_request
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
