"""Alert rules: read new audit events, raise alerts for the IG console, and email the trust's IG officers.

The rules run over the events in chain order from a watermark (`AlertScanState`), every
AUDIT_ALERT_SCAN_SECONDS (Celery beat, audit.tasks.scan_alerts). They read only audit events, never the
workflow tables, so they work for workflows added later as long as those record what audit.catalogue
says. The rules:

* emergency_override: any 110113 Security Alert of type 110127 Emergency Override Started (an urgent
  request auto-approved, a break-glass access). Always raised, to every trust in the event's scope.
* share_link_many_ips: one share link (`actor_ref` share_link:<id>) used from more than
  AUDIT_ALERT_SHARE_LINK_MAX_IPS addresses within AUDIT_ALERT_SHARE_LINK_WINDOW_HOURS. Every use counts:
  opening, code attempts, views, downloads.
* bulk_search: a member of staff making more than AUDIT_ALERT_SEARCHES_PER_HOUR queries (110112 with
  action E) in the hour up to any one of them.
* out_of_hours: a member of staff searching, viewing, moving or exporting patient images outside
  AUDIT_WORKING_HOURS on AUDIT_WORKING_DAYS (local time), or on an AUDIT_HOLIDAYS date. One alert per
  person per day and trust.
* unrelated_access: a member of staff viewing images held by a trust they do not belong to, or starting
  a transfer of them themselves (catalogue.ACCESS_SPECS), with no push, request, approval, emergency
  approval, import or share link (catalogue.RELATIONSHIP_SPECS) naming the same patient (NHS number or
  one of the studies) and one of their trusts in the last AUDIT_ALERT_RELATIONSHIP_DAYS.
* chain_broken: raised by audit.digest when verification fails, or the database disagrees with the
  digest files outside it (audit.anchors); region-wide.
* digest_problem: a digest file missing, altered, planted or unreadable, or a missing day; region-wide.

Alerts are deduplicated on a key per rule and subject; a rule firing again updates the count and
re-opens an acknowledged alert, without another email. Emails name no patient: they link to the console.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from . import catalogue
from .codes import Action, ActorType, EventID, EventType
from .models import AlertScanState, AuditAlert, AuditEvent
from .services import member_trusts

Kind = AuditAlert.Kind
Severity = AuditAlert.Severity

PATIENT_ACCESS_IDS = {
    EventID.QUERY,
    EventID.INSTANCES_ACCESSED,
    EventID.BEGIN_TRANSFERRING,
    EventID.INSTANCES_TRANSFERRED,
    EventID.EXPORT,
}
MAX_SEQS_KEPT = 50
RETRY_FOR = timedelta(days=2)
log = structlog.get_logger("audit.alerts")


@dataclass
class Raised:
    """What one scan did: the alerts it created (to be emailed) and those it updated."""

    created: list[AuditAlert]
    updated: int = 0


def raise_alert(
    *,
    kind: str,
    trust: str,
    key: str,
    summary: str,
    events: Iterable[AuditEvent] = (),
    severity: str = Severity.MEDIUM,
    subject_user_id: int | None = None,
    subject_label: str = "",
    nhs_number: str = "",
    detail: dict | None = None,
    raised: Raised | None = None,
) -> AuditAlert:
    """Create the alert for `key`, or bring the existing one up to date (and re-open it)."""
    events = list(events)
    now = timezone.now()
    first = min((e.timestamp for e in events), default=now)
    last = max((e.timestamp for e in events), default=now)
    seqs = [e.seq for e in events]
    alert = AuditAlert.objects.select_for_update().filter(dedupe_key=key[:200]).first()
    if alert is None:
        alert = AuditAlert.objects.create(
            kind=kind,
            trust=trust,
            dedupe_key=key[:200],
            summary=summary[:300],
            severity=severity,
            subject_user_id=subject_user_id,
            subject_label=subject_label[:254],
            nhs_number=nhs_number,
            event_count=max(len(events), 1),
            first_seq=min(seqs, default=None),
            last_seq=max(seqs, default=None),
            first_seen=first,
            last_seen=last,
            detail={**(detail or {}), "seqs": sorted(seqs)[-MAX_SEQS_KEPT:]},
        )
        if raised is not None:
            raised.created.append(alert)
        return alert
    alert.summary = summary[:300]
    alert.event_count += len(events)
    alert.last_seen = max(alert.last_seen, last)
    alert.last_seq = max([s for s in (alert.last_seq, *seqs) if s is not None], default=None)
    merged = sorted(set(alert.detail.get("seqs", [])) | set(seqs))[-MAX_SEQS_KEPT:]
    alert.detail = {**alert.detail, **(detail or {}), "seqs": merged}
    alert.status = AuditAlert.Status.OPEN
    alert.save()
    if raised is not None:
        raised.updated += 1
    return alert


# --- the scan ---------------------------------------------------------------------------------------


def scan(*, batch_size: int = 2000, notify_officers: bool = True) -> Raised:
    """Run every rule over the events recorded since the last scan. Safe to run twice at once."""
    total = Raised(created=[])
    while True:
        with transaction.atomic():
            state, _ = AlertScanState.objects.get_or_create(pk=1)
            state = AlertScanState.objects.select_for_update().get(pk=1)
            events = list(AuditEvent.objects.filter(seq__gt=state.last_seq).order_by("seq")[:batch_size])
            if events:
                evaluate(events, total)
                state.last_seq = events[-1].seq
            state.scanned_at = timezone.now()
            state.save()
        if len(events) < batch_size:
            break
    if notify_officers:
        notify()
    return total


def evaluate(events: list[AuditEvent], raised: Raised) -> None:
    for rule in (_emergency, _share_link_ips, _bulk_search, _out_of_hours, _unrelated_access):
        rule(events, raised)


def _staff(event: AuditEvent) -> bool:
    return event.actor_type in (ActorType.USER, ActorType.API_TOKEN) and event.actor_user_id is not None


def _emergency(events: list[AuditEvent], raised: Raised) -> None:
    for event in events:
        if event.event_id != EventID.SECURITY_ALERT or event.event_type != EventType.EMERGENCY_OVERRIDE_STARTED:
            continue
        for trust in event.scope or [""]:
            raise_alert(
                kind=Kind.EMERGENCY_OVERRIDE,
                trust=trust,
                key=f"emergency:{event.seq}:{trust}",
                summary=f"Emergency access by {event.actor_label or event.actor_type}: {event.reason}",
                events=[event],
                severity=Severity.HIGH,
                subject_user_id=event.actor_user_id,
                subject_label=event.actor_label,
                nhs_number=event.nhs_number,
                detail={"reason": event.reason, "peer_trust": event.peer_trust},
                raised=raised,
            )


def _share_link_ips(events: list[AuditEvent], raised: Raised) -> None:
    window = timedelta(hours=settings.AUDIT_ALERT_SHARE_LINK_WINDOW_HOURS)
    by_link: dict[str, list[AuditEvent]] = defaultdict(list)
    for event in events:
        if event.actor_type == ActorType.SHARE_LINK and event.actor_ref:
            by_link[event.actor_ref].append(event)
    for ref, link_events in by_link.items():
        latest = link_events[-1]
        recent = AuditEvent.objects.filter(actor_ref=ref, timestamp__gte=latest.timestamp - window)
        addresses = sorted({ip for ip in recent.values_list("client_ip", flat=True) if ip})
        if len(addresses) <= settings.AUDIT_ALERT_SHARE_LINK_MAX_IPS:
            continue
        for trust in latest.scope or [""]:
            raise_alert(
                kind=Kind.SHARE_LINK_MANY_IPS,
                trust=trust,
                key=f"share_link_ips:{ref}:{trust}",
                summary=f"Share link for {latest.actor_label} used from {len(addresses)} addresses",
                events=link_events,
                severity=Severity.HIGH,
                subject_label=latest.actor_label,
                nhs_number=latest.nhs_number,
                detail={"addresses": addresses, "share_link": ref},
                raised=raised,
            )


def _bulk_search(events: list[AuditEvent], raised: Raised) -> None:
    limit = settings.AUDIT_ALERT_SEARCHES_PER_HOUR
    by_user: dict[int, list[AuditEvent]] = defaultdict(list)
    for event in events:
        if event.event_id == EventID.QUERY and event.action == Action.EXECUTE and _staff(event):
            by_user[event.actor_user_id].append(event)
    for user_id, searches in by_user.items():
        latest = searches[-1]
        count = AuditEvent.objects.filter(
            actor_user_id=user_id,
            event_id=EventID.QUERY,
            action=Action.EXECUTE,
            timestamp__gt=latest.timestamp - timedelta(hours=1),
            timestamp__lte=latest.timestamp,
        ).count()
        if count <= limit:
            continue
        hour = timezone.localtime(latest.timestamp).strftime("%Y%m%d%H")
        for trust in sorted({code for event in searches for code in event.scope}) or [""]:
            raise_alert(
                kind=Kind.BULK_SEARCH,
                trust=trust,
                key=f"bulk_search:{user_id}:{hour}:{trust}",
                summary=f"{latest.actor_label} made {count} searches in an hour (more than {limit})",
                events=searches,
                subject_user_id=user_id,
                subject_label=latest.actor_label,
                detail={"searches_in_hour": count, "threshold": limit},
                raised=raised,
            )


def is_out_of_hours(when: datetime) -> bool:
    local = timezone.localtime(when)
    start, end = settings.AUDIT_WORKING_HOURS
    if local.date() in settings.AUDIT_HOLIDAYS or local.weekday() not in settings.AUDIT_WORKING_DAYS:
        return True
    return not start <= local.time() < end


def _out_of_hours(events: list[AuditEvent], raised: Raised) -> None:
    if not settings.AUDIT_ALERT_OUT_OF_HOURS:
        return
    grouped: dict[tuple[int, str, str], list[AuditEvent]] = defaultdict(list)
    for event in events:
        if event.event_id in PATIENT_ACCESS_IDS and _staff(event) and is_out_of_hours(event.timestamp):
            day = timezone.localtime(event.timestamp).date().isoformat()
            for trust in event.scope or [""]:
                grouped[(event.actor_user_id, day, trust)].append(event)
    for (user_id, day, trust), accesses in grouped.items():
        raise_alert(
            kind=Kind.OUT_OF_HOURS,
            trust=trust,
            key=f"out_of_hours:{user_id}:{day}:{trust}",
            summary=f"{accesses[-1].actor_label} accessed patient images out of hours on {day}",
            events=accesses,
            severity=Severity.LOW,
            subject_user_id=user_id,
            subject_label=accesses[-1].actor_label,
            detail={"day": day},
            raised=raised,
        )


def _pairs(specs: Iterable[catalogue.EventSpec]) -> Q:
    condition = Q()
    for spec in specs:
        condition |= Q(event_id=spec.event_id, event_type=spec.event_type)
    return condition


def _is_access(event: AuditEvent) -> bool:
    return any(
        (event.event_id, event.event_type) == (spec.event_id, spec.event_type) for spec in catalogue.ACCESS_SPECS
    )


def _unrelated_access(events: list[AuditEvent], raised: Raised) -> None:
    trusts_of: dict[int, set[str]] = {}
    for event in events:
        if not (_staff(event) and _is_access(event) and event.trust and (event.nhs_number or event.study_uids)):
            continue
        if event.actor_user_id not in trusts_of:
            trusts_of[event.actor_user_id] = member_trusts({event.actor_user_id}, set())
        own = trusts_of[event.actor_user_id]
        if event.trust in own or _justified(event, own):
            continue
        patient = event.nhs_number or event.study_uids[0]
        for trust in sorted({*event.scope, *own}):
            raise_alert(
                kind=Kind.UNRELATED_ACCESS,
                trust=trust,
                key=f"unrelated:{event.actor_user_id}:{patient}:{trust}",
                summary=(
                    f"{event.actor_label} accessed images held by {event.trust} with no transfer, request or "
                    "link involving their trust"
                ),
                events=[event],
                severity=Severity.HIGH,
                subject_user_id=event.actor_user_id,
                subject_label=event.actor_label,
                nhs_number=event.nhs_number,
                detail={"holding_trust": event.trust, "their_trusts": sorted(own)},
                raised=raised,
            )


def _justified(event: AuditEvent, own: set[str]) -> bool:
    if not own:
        return False
    since = event.timestamp - timedelta(days=settings.AUDIT_ALERT_RELATIONSHIP_DAYS)
    patient = Q(nhs_number=event.nhs_number) if event.nhs_number else Q(pk__in=[])
    for uid in event.study_uids:
        patient |= Q(study_uids__has_element=uid)
    involving = Q()
    for code in own:
        involving |= Q(scope__has_element=code)
    candidates = AuditEvent.objects.filter(timestamp__gte=since, seq__lt=event.seq).filter(patient)
    return candidates.filter(_pairs(catalogue.RELATIONSHIP_SPECS)).filter(involving).exists()


# --- telling people -----------------------------------------------------------------------------------


# Who hears of a trust's alerts is accounts.permissions' to say (beside every other audience), and the
# audit app sits below accounts: accounts registers its answer here when the apps are ready.
_audience: Callable[[str], Iterable[str]] | None = None


def register_audience(audience: Callable[[str], Iterable[str]]) -> None:
    """`audience(ods_code)` → the email addresses told of that trust's alerts ('' = region-wide)."""
    global _audience
    _audience = audience


def recipients(trust: str) -> list[str]:
    """The trust's IG officers (or, if it has none, the regional administrators); for a region-wide alert,
    every IG officer and regional administrator, and AUDIT_ALERT_EXTRA_RECIPIENTS."""
    if _audience is None:
        raise RuntimeError("No audit alert audience registered (accounts registers one when it is ready).")
    emails = set(_audience(trust))
    if not trust:
        emails |= set(settings.AUDIT_ALERT_EXTRA_RECIPIENTS)
    return sorted(emails)


def notify() -> int:
    """Email every alert not yet sent: those just raised, and any an earlier failure left behind.

    A mail server that is down loses nothing: the alert stays unsent and the next scan tries again.
    """
    pending = AuditAlert.objects.filter(notified_at__isnull=True, created_at__gte=timezone.now() - RETRY_FOR)
    sent = 0
    for alert in pending.order_by("pk"):
        to = recipients(alert.trust)
        if not to:
            continue
        url = settings.SITE_URL + reverse("audit:alert_detail", args=[alert.pk])
        body = render_to_string("audit/email/alert.txt", {"alert": alert, "url": url})
        where = alert.trust or "the region"
        try:
            send_mail(f"[Image Exchange] IG alert at {where}: {alert.get_kind_display()}", body, None, to)
        except OSError as exc:
            log.warning("audit alert email failed; will retry", alert=alert.pk, error=str(exc))
            continue
        AuditAlert.objects.filter(pk=alert.pk).update(notified_at=timezone.now())
        sent += 1
    return sent


@transaction.atomic
def acknowledge(*, alert: AuditAlert, user, note: str, actor) -> AuditAlert:
    alert.status = AuditAlert.Status.ACKNOWLEDGED
    alert.acknowledged_by = user
    alert.acknowledged_at = timezone.now()
    alert.note = note.strip()
    alert.save(update_fields=["status", "acknowledged_by", "acknowledged_at", "note"])
    catalogue.AUDIT_ALERT_ACKNOWLEDGED.record(
        actor=actor,
        trust=alert.trust,
        nhs_number=alert.nhs_number,
        reason=alert.note,
        detail={"alert": alert.pk, "kind": alert.kind},
    )
    return alert
