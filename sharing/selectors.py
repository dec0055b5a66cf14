"""Reading share links: what a member of staff may see, and who used a link (from the audit trail)."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts import permissions as perms
from audit.codes import ActorType
from audit.models import AuditEvent

from .models import ShareLink


def share_link_list(*, user) -> QuerySet[ShareLink]:
    return perms.visible_share_links(user, ShareLink.objects.select_related("trust", "created_by")).order_by(
        "-created_at"
    )


def share_link_accesses(link: ShareLink) -> QuerySet[AuditEvent]:
    """Every use of the link: when, from where, what (the audit trail is the record)."""
    return AuditEvent.objects.filter(actor_type=ActorType.SHARE_LINK, actor_ref=f"share_link:{link.pk}").order_by(
        "timestamp"
    )
