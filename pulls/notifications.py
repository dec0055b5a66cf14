"""Emails about requests, sent once the change is committed. They carry no patient identifiers: the link
leads to the portal, where the reader signs in and the viewing is audited."""

from __future__ import annotations

import structlog
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse

from accounts import permissions as perms

from .models import PullRequest

log = structlog.get_logger(__name__)


def _link(request: PullRequest) -> str:
    return settings.SITE_URL + reverse("pulls:detail", args=[request.pk])


def _send(subject: str, body: str, to: list[str], request_id: int) -> None:
    if not to:
        log.warning("request_email_no_recipients", request_id=request_id, subject=subject)
        return
    try:
        send_mail(f"[Image Exchange] {subject}", body, None, to)
    except OSError:  # the change is committed; a mail outage must not undo it or hide it
        log.exception("request_email_failed", request_id=request_id, subject=subject)


def approvers(request: PullRequest) -> list[str]:
    """The source trust's imaging managers and clinicians: who can answer a request."""
    return perms.emails(perms.approvers_of(request.source_trust_id))


def requester(request: PullRequest) -> list[str]:
    """The clinician who asked, while still at the requesting or the source trust."""
    trusts = [request.requesting_trust_id, request.source_trust_id]
    return perms.emails(perms.requester_among(request.requested_by_id, trusts))


def _load(pk: int) -> PullRequest:
    return PullRequest.objects.select_related("source_trust", "requesting_trust", "requested_by").get(pk=pk)


def send_decision(pk: int) -> None:
    request = _load(pk)
    who = request.source_trust.name
    if request.status == "approved":
        how = "approved automatically under your sharing agreement" if request.auto_approved else "approved"
        subject = f"Request {request.pk} {how} by {who}"
        body = (
            f"Your {request.get_priority_display().lower()} request {request.pk} to {who} was {how}: "
            f"{len(request.approved_study_uids)} studies are on their way.\n\n{_link(request)}\n"
        )
    else:
        subject = f"Request {request.pk} declined by {who}"
        body = (
            f"Your request {request.pk} to {who} was declined.\nReason: {request.decline_reason}\n\n{_link(request)}\n"
        )
    _send(subject, body, requester(request), pk)


def send_arrival(pk: int) -> None:
    request = _load(pk)
    transfer = request.transfer
    subject = f"Request {request.pk}: images from {request.source_trust.name} have arrived"
    body = (
        f"The studies you requested from {request.source_trust.name} (request {request.pk}) have arrived at "
        f"{request.requesting_trust.name}'s PACS; transfer status: {transfer.get_status_display().lower()}."
        f"\n\n{_link(request)}\n"
    )
    _send(subject, body, requester(request), pk)


def send_new_request(pk: int) -> None:
    request = _load(pk)
    subject = f"{request.get_priority_display()} image request {request.pk} from {request.requesting_trust.name}"
    body = (
        f"{request.requesting_trust.name} asks for a patient's images. Please approve or decline:\n\n{_link(request)}\n"
    )
    _send(subject, body, approvers(request), pk)


def send_escalation(pk: int) -> None:
    request = _load(pk)
    subject = (
        f"Overdue: {request.get_priority_display().lower()} image request {request.pk} "
        f"from {request.requesting_trust.name}"
    )
    body = (
        f"{request.requesting_trust.name} asked for a patient's images at {request.created_at:%H:%M %d %b %Y} "
        f"({request.get_priority_display().lower()}) and nobody has answered yet. Please approve or decline:"
        f"\n\n{_link(request)}\n"
    )
    _send(subject, body, approvers(request), pk)


def on_commit_decision(pk: int) -> None:
    transaction.on_commit(lambda: send_decision(pk))


def on_commit_arrival(pk: int) -> None:
    transaction.on_commit(lambda: send_arrival(pk))


def on_commit_new_request(pk: int) -> None:
    transaction.on_commit(lambda: send_new_request(pk))


def on_commit_escalation(pk: int) -> None:
    transaction.on_commit(lambda: send_escalation(pk))
