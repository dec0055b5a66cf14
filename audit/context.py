"""Who is acting and from where, read from a request in one place.

Four kinds of actor reach the audit trail: a member of staff signed in with a session, the same person
calling the API with a token (`actor_ref` names the token by a fingerprint, never the key), an external
consultant holding a share link (`share_link_actor`), and the portal itself (`SYSTEM`, `system_actor`):
Celery workers, the DICOM receiver, scheduled jobs.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest

from .codes import ActorType


@dataclass(frozen=True)
class Actor:
    type: str
    user_id: int | None = None
    label: str = ""
    client_ip: str | None = None
    user_agent: str = ""
    ref: str = ""
    request_id: str = ""


SYSTEM = Actor(type=ActorType.SYSTEM, label="portal")


def system_actor(label: str) -> Actor:
    """The portal acting on its own, named by the part that acted (e.g. `transfer worker`)."""
    return Actor(type=ActorType.SYSTEM, label=label[:254] or "portal")


def client_ip(request: HttpRequest) -> str | None:
    """REMOTE_ADDR, or the address the Nth trusted proxy saw, when TRUSTED_PROXY_COUNT says to look."""
    candidate = request.META.get("REMOTE_ADDR", "")
    hops = settings.TRUSTED_PROXY_COUNT
    if hops:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= hops:
            candidate = forwarded[-hops]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def token_fingerprint(key: str) -> str:
    """A stable name for an API token that does not reveal it (the key is the secret)."""
    return "token:" + hashlib.sha256(key.encode()).hexdigest()[:16]


def _where(request: HttpRequest) -> dict:
    return {
        "client_ip": client_ip(request),
        "user_agent": request.META.get("HTTP_USER_AGENT", "")[:512],
        "request_id": str(getattr(request, "request_id", "") or "")[:64],
    }


def actor_from_request(request: HttpRequest, user=None) -> Actor:
    """The acting party: the signed-in user (by token or session) or an anonymous caller."""
    user = user if user is not None else getattr(request, "user", None)
    where = _where(request)
    if user is not None and user.is_authenticated:
        # An API token (accounts.models.ApiToken) names itself by its fingerprint; the audit store knows
        # no other app, so it asks for that and not for the class.
        auth = getattr(request, "auth", None)
        if isinstance(getattr(auth, "fingerprint", None), str):
            return token_actor(request, user, auth)
        return Actor(type=ActorType.USER, user_id=user.pk, label=user.email, **where)
    return Actor(type=ActorType.ANONYMOUS, **where)


def token_actor(request: HttpRequest, user, token) -> Actor:
    """A member of staff (or a service account) calling the API with an accounts.models.ApiToken."""
    return Actor(type=ActorType.API_TOKEN, user_id=user.pk, label=user.email, ref=token.fingerprint, **_where(request))


def anonymous_actor(request: HttpRequest) -> Actor:
    return Actor(type=ActorType.ANONYMOUS, **_where(request))


def share_link_actor(request: HttpRequest, *, link_id: object, label: str) -> Actor:
    """An external consultant using a share link. `label` is whom the link was sent to (their email).

    The alert rules group a link's events by `actor_ref`, so every use of one link must pass the same id.
    """
    return Actor(type=ActorType.SHARE_LINK, label=label[:254], ref=f"share_link:{link_id}"[:64], **_where(request))
