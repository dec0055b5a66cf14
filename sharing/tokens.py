"""Secrets of a share link: the link token, the browser session key and the emailed one-time code.

The token and session keys carry 256 bits from `secrets`, so a plain SHA-256 is a sufficient stored
form. The one-time code is short (8 digits), so its stored form is keyed with SECRET_KEY and bound to
the link: a leaked database row does not give the code away by brute force of 10^8 candidates.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from django.conf import settings

CODE_DIGITS = 8
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{40,64}$")


def new_token() -> str:
    """A fresh link token: 32 random bytes, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(value: str) -> bool:
    """Cheap shape check before any database lookup."""
    return bool(_TOKEN.match(value or ""))


def new_code() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))


def keyed_digest(purpose: str, value: str) -> str:
    message = f"{purpose}:{value}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()


def code_hash(link_id: int, code: str) -> str:
    return keyed_digest("share-link-code", f"{link_id}:{code}")


def code_matches(link_id: int, code: str, stored: str) -> bool:
    cleaned = "".join(ch for ch in str(code or "") if ch.isdigit())
    if not stored or len(cleaned) != CODE_DIGITS:
        return False
    return hmac.compare_digest(code_hash(link_id, cleaned), stored)
