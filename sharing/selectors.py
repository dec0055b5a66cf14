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


_WHAT = {
    "open": "Opened the link",
    "code": "Entered the emailed code",
    "download": "Downloaded the study",
    "opinion": "Sent a second opinion",
}


def share_link_access_rows(link: ShareLink) -> list[dict]:
    """The access log as the link's page shows it: one row per thing the consultant did (an opinion is
    recorded twice on the trail, as the opinion and as a use of the link, and was listed twice), series
    by what they are (number, modality, description) rather than by UID."""
    series = _series_names(link)
    rows, opinions = [], set()
    for event in share_link_accesses(link):
        detail = event.detail or {}
        if detail.get("opinion"):
            if detail["opinion"] in opinions:
                continue
            opinions.add(detail["opinion"])
            what = _WHAT["opinion"]
        elif detail.get("series_uid"):
            what = f"Viewed {series.get(detail['series_uid'], 'a series')}"
        elif event.outcome:
            what = f"Refused: {detail.get('what', 'not allowed')}"
        else:
            what = _WHAT.get(detail.get("what", ""), detail.get("what", "") or "Used the link")
        rows.append({"when": event.timestamp, "ip": event.client_ip, "what": what, "ok": not event.outcome})
    return rows


def _series_names(link: ShareLink) -> dict[str, str]:
    """{series UID: "series 2 (CT, Axial 5 mm)"} from the staged copy, or what was noted when it was made."""
    from dicomkit import staged

    from .staging import share_dir

    names = {}
    folder = share_dir(link.pk)
    if folder.is_dir():
        for study in staged.manifest(folder).get("studies", []):
            for s in study.get("series", []):
                label = ", ".join(x for x in (s.get("modality"), s.get("description")) if x)
                number = s.get("number")
                names[s["series_instance_uid"]] = f"series {number if number is not None else ''} ({label})".replace(
                    "series  (", "series ("
                )
    return names
