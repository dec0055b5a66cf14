"""Reading the audit trail: filtered searches, keyset pages, the patient access and user activity reports.

Every query starts from `accounts.permissions.visible_audit_events`, so an IG officer of trust A gets
trust A's events whatever the filters say. Pages are keyset (seek) pages on (timestamp, seq), newest
first: each page is one backwards walk of an index that ends in (timestamp, seq), so page 10,000 costs
what page 1 does, and nothing ever counts millions of rows.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db.models import Count, Max, Min, Q, QuerySet
from django.utils.dateparse import parse_datetime

from accounts import permissions as perms
from audit.codes import EventID, EventType, Outcome
from audit.models import AuditAlert, AuditEvent

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
# A patient with more studies than this on record is searched by NHS number and the newest studies.
PATIENT_STUDY_LIMIT = 200


class BadCursor(ValueError):
    pass


@dataclass(frozen=True)
class EventFilters:
    nhs_number: str = ""
    patient_id: str = ""
    study_uid: str = ""
    user: str = ""
    trust: str = ""
    event_ids: tuple[str, ...] = ()
    event_type: str = ""
    outcome: int | None = None
    actor_type: str = ""
    since: datetime | None = None
    until: datetime | None = None

    def described(self) -> dict[str, object]:
        """The filters that were set, for the audit record of the search itself."""
        values = {
            "nhs_number": self.nhs_number,
            "patient_id": self.patient_id,
            "study_instance_uid": self.study_uid,
            "user": self.user,
            "trust": self.trust,
            "event_id": ",".join(self.event_ids),
            "event_type": self.event_type,
            "outcome": self.outcome,
            "actor_type": self.actor_type,
            "since": self.since.isoformat() if self.since else "",
            "until": self.until.isoformat() if self.until else "",
        }
        return {key: value for key, value in values.items() if value not in ("", None)}


def visible_events(user) -> QuerySet:
    return perms.visible_audit_events(user, AuditEvent.objects.all())


def search_events(user, filters: EventFilters) -> QuerySet:
    """The user's visible events matching the filters, newest first."""
    return apply_filters(visible_events(user), filters).order_by("-timestamp", "-seq")


def apply_filters(queryset: QuerySet, filters: EventFilters) -> QuerySet:
    conditions = {
        "nhs_number": filters.nhs_number,
        "patient_id": filters.patient_id,
        "study_uids__has_element": filters.study_uid,
        "scope__has_element": filters.trust.upper(),
        "event_type": filters.event_type,
        "actor_type": filters.actor_type,
        "timestamp__gte": filters.since,
        "timestamp__lt": filters.until,
    }
    queryset = queryset.filter(**{key: value for key, value in conditions.items() if value not in ("", None)})
    if filters.event_ids:
        queryset = queryset.filter(event_id__in=filters.event_ids)
    if filters.outcome is not None:
        queryset = queryset.filter(outcome=filters.outcome)
    if filters.user:
        queryset = queryset.filter(_actor_condition(filters.user))
    return queryset


def _actor_condition(who: str) -> Q:
    """A member of staff by email or id; otherwise whoever acted under that label (a share link's recipient)."""
    staff = get_user_model().objects.filter(email__iexact=who.strip())
    if who.strip().isdigit():
        staff = get_user_model().objects.filter(pk=int(who))
    user_id = staff.values_list("pk", flat=True).first()
    if user_id is not None:
        return Q(actor_user_id=user_id)
    return Q(actor_label__iexact=who.strip())


# --- keyset pages -----------------------------------------------------------------------------------


@dataclass
class Page:
    events: list[AuditEvent]
    next_cursor: str | None
    size: int
    first: bool = field(default=True)


def encode_cursor(event: AuditEvent) -> str:
    raw = f"{event.timestamp.isoformat()}|{event.seq}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, seq = raw.rsplit("|", 1)
        when = parse_datetime(stamp)
        if when is None or when.tzinfo is None:
            raise ValueError(stamp)
        return when, int(seq)
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise BadCursor("This page link is not valid; start again from the newest events.") from exc


def after_cursor(queryset: QuerySet, cursor: str | None) -> QuerySet:
    if not cursor:
        return queryset
    when, seq = decode_cursor(cursor)
    # `timestamp <= when` bounds the index walk; the OR only sorts out ties within one microsecond.
    return queryset.filter(timestamp__lte=when).filter(Q(timestamp__lt=when) | Q(seq__lt=seq))


def page_of(queryset: QuerySet, *, cursor: str | None = None, size: int = DEFAULT_PAGE_SIZE) -> Page:
    size = max(1, min(int(size), MAX_PAGE_SIZE))
    rows = list(after_cursor(queryset.order_by("-timestamp", "-seq"), cursor)[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return Page(rows, encode_cursor(rows[-1]) if more else None, size, first=not cursor)


def iterate(queryset: QuerySet, *, chunk: int = 2000) -> Iterator[AuditEvent]:
    """Every event of a query, newest first, in keyset chunks: exports stream without holding a cursor open."""
    cursor = None
    while True:
        ordered = after_cursor(queryset.order_by("-timestamp", "-seq"), cursor)
        rows = list(ordered[:chunk])
        yield from rows
        if len(rows) < chunk:
            return
        cursor = encode_cursor(rows[-1])


# --- reports ---------------------------------------------------------------------------------------


def patient_events(user, nhs_number: str) -> QuerySet:
    """Every visible event about a patient: naming their NHS number, or one of their studies.

    Some events name only studies (a share link's consultant viewing a study knows no NHS number), so
    the studies ever recorded against the NHS number are found first and searched for too.
    """
    uids = (
        AuditEvent.objects.filter(nhs_number=nhs_number)
        .exclude(study_uids=[])
        .order_by("-timestamp", "-seq")
        .values_list("study_uids", flat=True)[:PATIENT_STUDY_LIMIT]
    )
    studies = sorted({uid for row in uids for uid in row})[:PATIENT_STUDY_LIMIT]
    condition = Q(nhs_number=nhs_number)
    for uid in studies:
        condition |= Q(study_uids__has_element=uid)
    return visible_events(user).filter(condition).order_by("-timestamp", "-seq")


@dataclass(frozen=True)
class PatientSummary:
    events: int
    first: datetime | None
    last: datetime | None
    people: list[dict]
    trusts: list[str]
    reasons: list[dict]
    emergencies: int


def patient_summary(events: QuerySet) -> PatientSummary:
    """Who accessed the patient's images, how often, first and last; the reasons they gave."""
    totals = events.aggregate(n=Count("pk"), first=Min("timestamp"), last=Max("timestamp"))
    people = list(
        events.order_by()
        .values("actor_type", "actor_label", "actor_user_id")
        .annotate(n=Count("pk"), first=Min("timestamp"), last=Max("timestamp"))
        .order_by("-last")
    )
    reasons = list(
        events.exclude(reason="")
        .order_by()
        .values("reason", "actor_label")
        .annotate(n=Count("pk"), last=Max("timestamp"))
        .order_by("-last")[:100]
    )
    trusts = sorted({code for row in events.order_by().values_list("scope", flat=True).distinct() for code in row})
    emergencies = events.filter(
        event_id=EventID.SECURITY_ALERT, event_type=EventType.EMERGENCY_OVERRIDE_STARTED
    ).count()
    return PatientSummary(totals["n"], totals["first"], totals["last"], people, trusts, reasons, emergencies)


@dataclass(frozen=True)
class UserSummary:
    events: int
    first: datetime | None
    last: datetime | None
    by_event: list[dict]
    patients: int
    failures: int
    open_alerts: int


def user_events(user, target_id: int) -> QuerySet:
    return visible_events(user).filter(actor_user_id=target_id).order_by("-timestamp", "-seq")


def user_summary(viewer, events: QuerySet, target_id: int) -> UserSummary:
    totals = events.aggregate(
        n=Count("pk"),
        first=Min("timestamp"),
        last=Max("timestamp"),
        patients=Count("nhs_number", distinct=True, filter=~Q(nhs_number="")),
        failures=Count("pk", filter=~Q(outcome=Outcome.SUCCESS)),
    )
    by_event = list(
        events.order_by().values("event_id", "event_type").annotate(n=Count("pk"), last=Max("timestamp")).order_by("-n")
    )
    alerts = visible_alerts(viewer).filter(subject_user_id=target_id, status=AuditAlert.Status.OPEN).count()
    return UserSummary(
        totals["n"], totals["first"], totals["last"], by_event, totals["patients"], totals["failures"], alerts
    )


def visible_alerts(user) -> QuerySet:
    return perms.visible_audit_alerts(user, AuditAlert.objects.all())


def alerts_for(user, *, status: str = "", kind: str = "") -> QuerySet:
    queryset = visible_alerts(user).select_related("subject_user", "acknowledged_by")
    if status:
        queryset = queryset.filter(status=status)
    if kind:
        queryset = queryset.filter(kind=kind)
    return queryset.order_by("status", "-last_seen", "-pk")


def alert_events(user, alert: AuditAlert) -> QuerySet:
    seqs = alert.detail.get("seqs") or [s for s in (alert.first_seq, alert.last_seq) if s]
    return visible_events(user).filter(seq__in=seqs).order_by("-timestamp", "-seq")
