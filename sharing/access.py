"""The consultant's side of a share link: token exchange, the second factor, and the check that guards
every later request. Nothing here is cached: each request reads the link row again, so revocation and
expiry take effect on the very next image.
"""

from __future__ import annotations

import functools
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pydicom
from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils import timezone

from audit import catalogue
from audit.codes import Outcome
from audit.context import Actor, anonymous_actor, client_ip, share_link_actor

from . import tokens
from .models import ShareLink, ShareSession, Staging

RESEND_SECONDS = 60
LAST_SEEN_EVERY = timedelta(seconds=60)


@dataclass
class Denied(Exception):
    """The request gets a plain page with this status and message; nothing else is served."""

    status: int
    title: str
    message: str


GONE = {
    "revoked": "The person who shared these images has withdrawn the link.",
    "expired": "This link has expired.",
    "locked": "This link is locked after too many wrong codes. Ask the person who shared it for a new link.",
    "failed": "These images could not be prepared. Ask the person who shared them for a new link.",
    "purged": "This link is no longer available.",
}


def link_actor(request: HttpRequest, link: ShareLink) -> Actor:
    return share_link_actor(request, link_id=link.pk, label=link.recipient_email)


def _audit_fields(link: ShareLink) -> dict:
    return {
        "trust": link.trust.ods_code,
        "study_uids": link.study_instance_uids,
        "nhs_number": link.nhs_number,
        "patient_id": link.patient_id,
    }


def security_alert(
    request: HttpRequest,
    what: str,
    link: ShareLink | None = None,
    *,
    outcome: int = Outcome.SERIOUS_FAILURE,
    **detail: object,
) -> None:
    if link is None:
        catalogue.SHARE_LINK_SECURITY_ALERT.record(
            actor=anonymous_actor(request), outcome=Outcome.SERIOUS_FAILURE, detail={"what": what, **detail}
        )
        return
    catalogue.SHARE_LINK_SECURITY_ALERT.record(
        actor=link_actor(request, link),
        outcome=outcome,
        detail={"what": what, "share_link": link.pk, **detail},
        **_audit_fields(link),
    )


def accessed(request: HttpRequest, link: ShareLink, what: str, **detail: object) -> None:
    catalogue.SHARE_LINK_ACCESSED.record(
        actor=link_actor(request, link), detail={"what": what, "share_link": link.pk, **detail}, **_audit_fields(link)
    )


def unusable_because(link: ShareLink) -> str:
    """Why the link may not be used now ('' if it may). Staging in progress is not a reason to refuse
    for good: see `check_usable`."""
    if link.revoked_at:
        return "revoked"
    if link.is_expired:
        return "expired"
    if link.locked_at:
        return "locked"
    if link.purged_at:
        return "purged"
    if link.staging_status == Staging.FAILED:
        return "failed"
    return ""


def check_usable(request: HttpRequest, link: ShareLink) -> None:
    """Raise Denied (410, audited as a security alert) unless the link may be used right now. The alert
    is written once per link, reason and address per window: a viewer still open on a revoked link
    asks for many images, and each refusal must not become an audit row (nor a way to flood the trail)."""
    reason = unusable_because(link)
    if reason:
        seen = f"sharing:unusable:{link.pk}:{reason}:{client_ip(request) or 'unknown'}"
        if cache.add(seen, 1, timeout=settings.SHARE_LINK_GUESS_WINDOW):
            security_alert(request, reason, link)
        raise Denied(410, "Link no longer available", GONE[reason])
    if link.staging_status != Staging.READY:
        raise Denied(
            503, "Images being prepared", "The images are still being prepared. Please try again in a few minutes."
        )


# --- guessing tokens: one address gets SHARE_LINK_GUESS_LIMIT unknown tokens per window ---------------


def _guess_key(request: HttpRequest) -> str:
    return f"sharing:guesses:{client_ip(request) or 'unknown'}"


def guessing_blocked(request: HttpRequest) -> bool:
    return (cache.get(_guess_key(request)) or 0) >= settings.SHARE_LINK_GUESS_LIMIT


def note_guess(request: HttpRequest) -> None:
    key = _guess_key(request)
    if not cache.add(key, 1, timeout=settings.SHARE_LINK_GUESS_WINDOW):
        try:
            cache.incr(key)
        except ValueError:
            cache.set(key, 1, timeout=settings.SHARE_LINK_GUESS_WINDOW)


# --- the token exchange ------------------------------------------------------------------------------


def link_for_token(request: HttpRequest, token: str) -> ShareLink:
    """The usable link a token names, changing nothing: what answers a plain GET of the emailed URL.

    Email scanners and link previews fetch that URL before the consultant does, so reading it must not
    start a session, send a code or put an "open" on the trail (issue #21). Raises Denied: 429 while the
    address is rate limited, 404 for an unknown token, 410 for a link that can no longer be used; those
    refusals are security events, as before (the token itself is never recorded).
    """
    if guessing_blocked(request):
        # Once per address per window: a flood of refused requests must not become a flood of audit rows.
        if cache.add(_guess_key(request) + ":alerted", 1, timeout=settings.SHARE_LINK_GUESS_WINDOW):
            security_alert(request, "rate limited")
        raise Denied(429, "Too many attempts", "Too many invalid links from your address. Try again later.")
    link = None
    if tokens.looks_like_token(token):
        link = ShareLink.objects.select_related("trust").filter(token_hash=tokens.token_hash(token)).first()
    if link is None:
        note_guess(request)
        security_alert(request, "unknown token")
        raise Denied(404, "Link not found", "This link is not valid. Check that you copied all of it.")
    check_usable(request, link)
    return link


def holds_session_of(request: HttpRequest, link: ShareLink) -> bool:
    current = session_from(request)
    return current is not None and current.link_id == link.pk


def open_link(request: HttpRequest, token: str) -> str:
    """Exchange a link token for a new browser session and email the code; returns the session key for
    the cookie ('' when the browser already holds a session of this link). Only on the consultant's
    explicit action (a POST from the link's page), never on a plain GET. Raises Denied as
    `link_for_token` does."""
    link = link_for_token(request, token)
    if holds_session_of(request, link):
        # The consultant clicked the emailed link again in the same browser: keep their session (and
        # spare them a new code), but the open is still on the trail.
        accessed(request, link, "open", reopened=True)
        return ""
    key = secrets.token_urlsafe(32)
    with transaction.atomic():
        ShareSession.objects.create(link=link, key_hash=tokens.token_hash(key), client_ip=client_ip(request))
        accessed(request, link, "open")
        send_code_if_needed(link)
    return key


def send_code_if_needed(link: ShareLink, *, force: bool = False) -> bool:
    """Email a new one-time code unless one is still valid (or one went out under a minute ago)."""
    now = timezone.now()
    if link.code_hash and link.code_expires_at and link.code_expires_at > now and not force:
        return False
    if force and link.code_sent_at and now - link.code_sent_at < timedelta(seconds=RESEND_SECONDS):
        return False
    code = tokens.new_code()
    link.code_hash = tokens.code_hash(link.pk, code)
    link.code_sent_at = now
    link.code_expires_at = now + timedelta(minutes=settings.SHARE_LINK_CODE_MINUTES)
    link.save(update_fields=["code_hash", "code_sent_at", "code_expires_at"])
    body = render_to_string("sharing/email/code.txt", {"code": code, "link": link})
    recipient, subject = link.recipient_email, "Your one-time code for the shared images"
    transaction.on_commit(lambda: send_mail(subject, body, None, [recipient]))
    return True


# --- every later request -------------------------------------------------------------------------------


def session_from(request: HttpRequest) -> ShareSession | None:
    key = request.COOKIES.get(settings.SHARE_LINK_COOKIE_NAME, "")
    if not key or len(key) > 100:
        return None
    return (
        ShareSession.objects.select_related("link", "link__trust", "link__gateway")
        .filter(key_hash=tokens.token_hash(key))
        .first()
    )


def require_session(request: HttpRequest, *, verified: bool = True) -> ShareSession:
    """The request's share session, after checking its link afresh. Raises Denied."""
    session = session_from(request)
    if session is None:
        raise Denied(404, "Link not found", "Open the link from your email to view these images.")
    check_usable(request, session.link)
    if verified and not session.verified_at:
        raise Denied(403, "Code needed", "Enter the code we emailed you before viewing the images.")
    now = timezone.now()
    if session.last_seen_at is None or now - session.last_seen_at > LAST_SEEN_EVERY:
        ShareSession.objects.filter(pk=session.pk).update(last_seen_at=now, client_ip=client_ip(request))
    return session


def form_token(request: HttpRequest) -> str:
    """The link pages' CSRF token, bound to the share session's cookie.

    Django's CSRF check cannot be used here: under `Referrer-Policy: no-referrer` browsers send
    `Origin: null` with form posts, which Django refuses. The session cookie is SameSite=Strict (never
    sent with another site's post) and every form must also carry this keyed digest of it.
    """
    key = request.COOKIES.get(settings.SHARE_LINK_COOKIE_NAME, "")
    return tokens.keyed_digest("share-form", key) if key else ""


def check_form_token(request: HttpRequest) -> None:
    expected = form_token(request)
    if not expected or not hmac.compare_digest(expected, request.POST.get("share_form_token", "")):
        raise Denied(403, "Form expired", "This form has expired. Go back, reload the page and try again.")


def verify_code(request: HttpRequest, session: ShareSession, code: str) -> bool:
    """Check the second factor. The link locks at its SHARE_LINK_MAX_CODE_FAILURES-th wrong code."""
    with transaction.atomic():
        link = ShareLink.objects.select_for_update().select_related("trust").get(pk=session.link_id)
        if link.locked_at:
            raise Denied(410, "Link no longer available", GONE["locked"])
        fresh = link.code_expires_at is not None and link.code_expires_at > timezone.now()
        if fresh and tokens.code_matches(link.pk, code, link.code_hash):
            link.code_hash = ""  # one time only: another browser gets a code of its own
            link.save(update_fields=["code_hash"])
            ShareSession.objects.filter(pk=session.pk).update(verified_at=timezone.now())
            session.verified_at = timezone.now()
            accessed(request, link, "code")
            return True
        ShareLink.objects.filter(pk=link.pk).update(code_failures=F("code_failures") + 1)
        link.refresh_from_db(fields=["code_failures"])
        # A mistyped code is a minor failure (4), as the catalogue says of code attempts; the lock is serious.
        security_alert(
            request,
            "wrong code",
            link,
            outcome=Outcome.MINOR_FAILURE,
            failures=link.code_failures,
            code_expired=not fresh,
        )
        if link.code_failures >= settings.SHARE_LINK_MAX_CODE_FAILURES:
            ShareLink.objects.filter(pk=link.pk).update(locked_at=timezone.now())
            security_alert(request, "link locked", link, failures=link.code_failures)
    return False


def note_series_viewed(request: HttpRequest, session: ShareSession, path: Path) -> None:
    """One 110103 per series per session: scrolling at 20 images a second would otherwise flood the chain.

    Cheap on the hot path: the series comes from a cached header read, and a series already seen (held
    in the session row every request loads anyway) costs no further query.
    """
    stat = path.stat()
    study_uid, series_uid = _series_of(str(path), stat.st_mtime_ns)
    note_series(request, session, study_uid, series_uid)


def note_series(request: HttpRequest, session: ShareSession, study_uid: str, series_uid: str) -> None:
    """`note_series_viewed` for a caller that knows the series already (the DICOMweb endpoints)."""
    if not series_uid or series_uid in session.series_seen:
        return
    with transaction.atomic():
        locked = ShareSession.objects.select_for_update().get(pk=session.pk)
        if series_uid in locked.series_seen:
            session.series_seen = locked.series_seen
            return
        locked.series_seen = [*locked.series_seen, series_uid]
        locked.save(update_fields=["series_seen"])
        link = session.link
        catalogue.SHARE_LINK_VIEWED.record(
            actor=link_actor(request, link),
            trust=link.trust.ods_code,
            study_uids=[study_uid],
            nhs_number=link.nhs_number,
            patient_id=link.patient_id,
            detail={"share_link": link.pk, "series_uid": series_uid},
        )
    session.series_seen = locked.series_seen


@functools.lru_cache(maxsize=4096)
def _series_of(path: str, _mtime_ns: int) -> tuple[str, str]:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID", "SeriesInstanceUID"])
    except Exception:  # noqa: BLE001 - an unreadable header names no series; rendering reports the file itself
        return "", ""
    return str(ds.get("StudyInstanceUID", "")), str(ds.get("SeriesInstanceUID", ""))
