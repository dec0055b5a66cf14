"""Who is acting and from where, read from a request in one place."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest
from rest_framework.authtoken.models import Token

from .codes import ActorType


@dataclass(frozen=True)
class Actor:
    type: str
    user_id: int | None = None
    label: str = ""
    client_ip: str | None = None
    user_agent: str = ""


SYSTEM = Actor(type=ActorType.SYSTEM, label="portal")


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


def actor_from_request(request: HttpRequest, user=None) -> Actor:
    """The acting party: the signed-in user (by token or session) or an anonymous caller."""
    user = user if user is not None else getattr(request, "user", None)
    ip = client_ip(request)
    agent = request.META.get("HTTP_USER_AGENT", "")[:512]
    if user is not None and user.is_authenticated:
        kind = ActorType.API_TOKEN if isinstance(getattr(request, "auth", None), Token) else ActorType.USER
        return Actor(type=kind, user_id=user.pk, label=user.email, client_ip=ip, user_agent=agent)
    return Actor(type=ActorType.ANONYMOUS, client_ip=ip, user_agent=agent)
