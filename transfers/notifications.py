"""Emails when a transfer ends: the requester hears how it went; the destination trust's imaging managers
hear that images have arrived for them to file.

No patient identifiers in the message (email is not a safe channel for them): the transfer number, the
trusts, the counts and a link to the portal, where the reader signs in to see who it concerns.
"""

from __future__ import annotations

import structlog
from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse

from accounts import permissions as perms

from .models import BULK, InstanceState, Status, Transfer

log = structlog.get_logger(__name__)

TELL_REQUESTER = (Status.COMPLETED, Status.COMPLETED_WITH_ERRORS, Status.FAILED)
TELL_DESTINATION = (Status.COMPLETED, Status.COMPLETED_WITH_ERRORS)


def destination_managers(transfer: Transfer) -> list[str]:
    """Active imaging managers of the receiving trust, by email address."""
    return perms.emails(perms.imaging_managers_of(transfer.destination_id))


def requester(transfer: Transfer) -> list[str]:
    """Who asked for the transfer, while still active at its source or destination (they may open its page)."""
    trusts = [transfer.source_id, transfer.destination_id]
    return perms.emails(perms.requester_among(transfer.requested_by_id, trusts))


def transfer_finished(transfer_id: int) -> int:
    """Send the emails for a transfer that has just ended; returns how many messages went out.

    Called once the engine's final transaction has committed. A mail server that is down must not undo
    a finished transfer, so sending errors are logged (with the transfer number), not raised."""
    transfer = Transfer.objects.select_related("source", "destination", "requested_by").get(pk=transfer_id)
    if transfer.priority == BULK and transfer.status != Status.FAILED:
        return 0  # background copies (forwarding) go unannounced; a failure still reaches whoever set them up
    sent = 0
    try:
        asker = requester(transfer)
        if transfer.status in TELL_REQUESTER and asker and not _told_by_request(transfer):
            sent += _send(transfer, asker, _requester_text(transfer))
        if transfer.status in TELL_DESTINATION:
            # The requester already has their own message, even if they also manage the destination.
            managers = [e for e in destination_managers(transfer) if e != transfer.requested_by.email]
            if managers:
                sent += _send(transfer, managers, _arrival_text(transfer))
    except Exception:
        log.exception("transfer_email_failed", transfer_id=transfer_id, status=transfer.status)
    return sent


def _told_by_request(transfer: Transfer) -> bool:
    """An approved request's arrival is announced by pulls.services with the request's own context;
    one message to the requester about the same images is enough."""
    return (
        transfer.status in TELL_DESTINATION
        and Transfer.objects.filter(pk=transfer.pk, pull_request__isnull=False).exists()
    )


def _send(transfer: Transfer, recipients: list[str], text: tuple[str, str]) -> int:
    subject, body = text
    prefix = getattr(settings, "ACCOUNT_EMAIL_SUBJECT_PREFIX", "")
    # One message per recipient: managers of a trust do not need each other's addresses.
    for address in recipients:
        send_mail(f"{prefix}{subject}", body, None, [address])
    log.info("transfer_email_sent", transfer_id=transfer.pk, recipients=len(recipients), status=transfer.status)
    return len(recipients)


def _counts(transfer: Transfer) -> tuple[int, int, int]:
    states = list(transfer.instances.values_list("state", flat=True))
    delivered = states.count(InstanceState.STORED) + states.count(InstanceState.ALREADY_PRESENT)
    return len(states), delivered, states.count(InstanceState.FAILED)


def _link(transfer: Transfer) -> str:
    return f"{settings.SITE_URL}{reverse('transfers:detail', kwargs={'pk': transfer.pk})}"


def _requester_text(transfer: Transfer) -> tuple[str, str]:
    total, stored, failed = _counts(transfer)
    route = f"{transfer.source.ods_code} to {transfer.destination.ods_code}"  # ASCII: plain subject headers
    studies = len(transfer.study_instance_uids)
    if transfer.status == Status.COMPLETED:
        subject = f"Transfer {transfer.pk} completed ({route})"
        noun = "study" if studies == 1 else "studies"
        lead = f"All {stored} images of {studies} {noun} reached {transfer.destination.name}."
    elif transfer.status == Status.COMPLETED_WITH_ERRORS:
        subject = f"Transfer {transfer.pk} completed with errors ({route})"
        lead = (
            f"{stored} of {total} images reached {transfer.destination.name}; {failed} could not be sent. "
            "The transfer page lists each failure and lets you retry what did not arrive."
        )
    else:
        subject = f"Transfer {transfer.pk} failed ({route})"
        reason = next((e["error"] for e in reversed(transfer.errors) if "sop_instance_uid" not in e), "")
        lead = f"The images did not reach {transfer.destination.name}" + (f": {reason}" if reason else ".")
        if stored:
            lead += f" ({stored} of {total} images had arrived before it stopped.)"
    body = f"{lead}\n\nPriority: {transfer.get_priority_display()}\nDetails: {_link(transfer)}\n"
    return subject, body


def _arrival_text(transfer: Transfer) -> tuple[str, str]:
    total, stored, failed = _counts(transfer)
    subject = f"Images arrived from {transfer.source.ods_code}: transfer {transfer.pk}"
    lead = f"{stored} images from {transfer.source.name} were stored on your gateway {transfer.destination_gateway}."
    if failed:
        lead += f" {failed} of {total} could not be sent; the sender has been told."
    body = (
        f"{lead}\n\nPriority: {transfer.get_priority_display()}\n"
        f"Please check they are filed against the right patient.\nDetails: {_link(transfer)}\n"
    )
    return subject, body
