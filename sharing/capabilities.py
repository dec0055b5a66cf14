"""Bearer capabilities for a share link's DICOMweb root (issue #21): minted by the consultant's verified
session, for viewers and tools that cannot carry its cookie (Weasis, 3D Slicer, a script). Each request
re-reads the token, its session and its link, so revocation and expiry apply on the next call.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils import timezone

from . import access, tokens
from .access import Denied
from .models import DicomWebToken, ShareSession

MAX_TOKENS_PER_SESSION = 10
LAST_USED_EVERY = timedelta(seconds=60)


def token_mint(request: HttpRequest, session: ShareSession) -> tuple[str, DicomWebToken]:
    """A new bearer token for the session's link, shown to the consultant once. It lives
    DICOMWEB_TOKEN_HOURS, never past the link's own expiry."""
    if not session.verified_at:
        raise ValidationError("Enter the emailed code first.")
    if session.dicomweb_tokens.filter(expires_at__gt=timezone.now()).count() >= MAX_TOKENS_PER_SESSION:
        raise ValidationError(f"At most {MAX_TOKENS_PER_SESSION} tokens at once; wait for one to expire.")
    link = session.link
    expires = min(link.expires_at, timezone.now() + timedelta(hours=settings.DICOMWEB_TOKEN_HOURS))
    key = secrets.token_urlsafe(32)
    row = DicomWebToken.objects.create(session=session, key_hash=tokens.token_hash(key), expires_at=expires)
    access.accessed(request, link, "dicomweb token", token=row.pk, expires_at=expires.isoformat())
    return key, row


def bearer_of(request: HttpRequest) -> str | None:
    """The bearer credential of an `Authorization: Bearer` header, None when there is none."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip()


def session_for_bearer(request: HttpRequest, key: str) -> ShareSession:
    """The verified share session a bearer token was minted by, after checking its link afresh.

    Raises Denied: 401 for an unknown or expired token (unknown ones count towards the address's guess
    limit, as unknown link tokens do), 429 while the address is rate limited, 410 once the link is
    revoked, expired, locked or purged, 503 while it is being staged."""
    if access.guessing_blocked(request):
        raise Denied(429, "Too many attempts", "Too many invalid credentials from your address. Try again later.")
    row = None
    if tokens.looks_like_token(key):
        row = (
            DicomWebToken.objects.select_related("session__link__trust", "session__link__gateway")
            .filter(key_hash=tokens.token_hash(key))
            .first()
        )
    if row is None:
        access.note_guess(request)
        access.security_alert(request, "unknown dicomweb token")
        raise Denied(401, "Unknown token", "This token is not valid.")
    session = row.session
    access.check_usable(request, session.link)
    now = timezone.now()
    if row.expires_at <= now or not session.verified_at:
        raise Denied(401, "Token expired", "This token has expired; make a new one on the link's page.")
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_EVERY:
        DicomWebToken.objects.filter(pk=row.pk).update(last_used_at=now)
    return session
