"""What waits for a member of staff, by role: the home page's counts and lists. Read-only selectors over
what each app already scopes (accounts.permissions); nothing here decides a rule of its own."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from accounts import permissions as perms

RECENT = timedelta(days=14)
LIST_LENGTH = 10


@dataclass
class Box:
    """One count on the home page, and the list behind it (each row one click from its action)."""

    key: str
    title: str
    count: int
    href: str
    rows: list = field(default_factory=list)
    attention: bool = False
    empty: str = "Nothing."


def worklist(user) -> list[Box]:
    boxes: list[Box] = []
    if perms.member_trust_ids(user, perms.Perm.APPROVE_REQUESTS):
        boxes.append(_to_approve(user))
    if perms.may_see_reconciliation(user):
        boxes.append(_to_reconcile(user))
        boxes.append(_corrections(user))
    if perms.member_trust_ids(user, perms.Perm.REQUEST_STUDIES):
        boxes.append(_my_requests(user))
    if perms.study_search_trust_ids(user):  # clinicians and imaging managers move images; IG officers do not
        boxes.append(_problem_transfers(user))
        boxes.append(_my_transfers(user))
    if perms.member_trust_ids(user, perms.Perm.PUSH_STUDIES) or perms.member_trust_ids(
        user, perms.Perm.MANAGE_SHARE_LINKS
    ):
        boxes.append(_opinions(user))
    if perms.may_view_audit(user):
        boxes.append(_alerts(user))
    return boxes


def _to_approve(user) -> Box:
    from pulls.models import PullRequest, RequestStatus

    waiting = perms.visible_requests(user, PullRequest.objects.select_related("requesting_trust", "source_trust"))
    waiting = waiting.filter(
        status=RequestStatus.PENDING, source_trust_id__in=perms.member_trust_ids(user, perms.Perm.APPROVE_REQUESTS)
    ).order_by("created_at")
    return Box(
        "to_approve",
        "Requests to approve",
        waiting.count(),
        reverse("pulls:list") + "?direction=incoming&status=pending",
        list(waiting[:LIST_LENGTH]),
        attention=waiting.exists(),
        empty="No request waits for your trust's answer.",
    )


def _corrections(user) -> Box:
    from copies import selectors

    waiting = selectors.received_deliveries(user, unacknowledged=True)
    return Box(
        "corrections",
        "Corrections to acknowledge",
        waiting.count(),
        reverse("copies:corrections"),
        list(waiting[:LIST_LENGTH]),
        attention=waiting.exists(),
        empty="No correction of a study your trust holds waits for you.",
    )


def _to_reconcile(user) -> Box:
    from reconciliation import selectors
    from reconciliation.models import Outcome

    held = selectors.reconciliation_list(user=user, outcome=Outcome.HELD)
    return Box(
        "to_reconcile",
        "Arrivals to match to a patient",
        held.count(),
        reverse("reconciliation:queue"),
        list(held[:LIST_LENGTH]),
        attention=held.exists(),
        empty="No arrival waits to be matched.",
    )


def _my_requests(user) -> Box:
    from pulls.models import PullRequest
    from pulls.progress import request_stage

    since = timezone.now() - RECENT
    mine = (
        PullRequest.objects.filter(requested_by=user)
        .filter(Q(created_at__gte=since) | Q(transfer__completed_at__gte=since) | Q(transfer__completed_at=None))
        .select_related("requesting_trust", "source_trust", "transfer__source", "transfer__destination")
        .order_by("-created_at")
    )
    rows = [(r, request_stage(r)) for r in mine[:LIST_LENGTH]]
    return Box(
        "my_requests",
        "Your requests",
        mine.count(),
        reverse("pulls:list") + "?direction=outgoing",
        rows,
        empty="You have asked for no images in the last two weeks.",
    )


def _problem_transfers(user) -> Box:
    from transfers import selectors
    from transfers.models import Status
    from transfers.progress import transfer_stage

    since = timezone.now() - timedelta(days=7)
    problems = selectors.transfer_list(user=user).filter(
        status__in=(Status.FAILED, Status.COMPLETED_WITH_ERRORS), completed_at__gte=since
    )
    if not perms.transfer_operations_trust_ids(user):
        problems = problems.filter(requested_by=user)  # a clinician's own; managers see their trusts'
    stuck = selectors.transfer_operations(user=user).stuck if perms.may_view_transfer_operations(user) else []
    rows = [(t, transfer_stage(t)) for t in [*stuck, *problems[:LIST_LENGTH]]][:LIST_LENGTH]
    href = reverse("transfers:operations") if perms.may_view_transfer_operations(user) else reverse("transfers:list")
    count = problems.count() + len(stuck)
    return Box(
        "problems",
        "Failed or stuck transfers",
        count,
        href,
        rows,
        attention=bool(count),
        empty="No transfer failed or stuck in the last week.",
    )


def _my_transfers(user) -> Box:
    from transfers import selectors
    from transfers.progress import transfer_stage

    recent = selectors.transfer_list(user=user).filter(requested_by=user, created_at__gte=timezone.now() - RECENT)
    return Box(
        "my_transfers",
        "Your transfers",
        recent.count(),
        reverse("transfers:list") + "?direction=outgoing",
        [(t, transfer_stage(t)) for t in recent[:LIST_LENGTH]],
        empty="You have sent no images in the last two weeks.",
    )


def _opinions(user) -> Box:
    from sharing.models import SecondOpinion, ShareLink

    links = perms.visible_share_links(user, ShareLink.objects.all())
    opinions = (
        SecondOpinion.objects.filter(link__in=links, created_at__gte=timezone.now() - RECENT)
        .select_related("link", "link__trust")
        .order_by("-created_at")
    )
    return Box(
        "opinions",
        "Second opinions returned",
        opinions.count(),
        reverse("sharing:list"),
        list(opinions[:LIST_LENGTH]),
        attention=opinions.filter(urgent=True).exists(),
        empty="No opinion has come back in the last two weeks.",
    )


def _alerts(user) -> Box:
    from audit.models import AuditAlert

    alerts = perms.visible_audit_alerts(user, AuditAlert.objects.filter(status=AuditAlert.Status.OPEN))
    alerts = alerts.order_by("-last_seen")
    return Box(
        "alerts",
        "Open audit alerts",
        alerts.count(),
        reverse("audit:alerts"),
        list(alerts[:LIST_LENGTH]),
        attention=alerts.exists(),
        empty="No open alert.",
    )
