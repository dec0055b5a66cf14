"""API tokens and service accounts: making, checking and revoking the keys machine clients use.

A token is refused unless its owner could do the same in a browser: an active account with a second
factor enrolled. The one exception is a service account, which a regional administrator creates for
one trust; it has no password and no sign-in, only tokens. Keys are 256-bit random strings; only
their SHA-256 is stored (a fast hash suits a random key: nothing to brute-force), so a copy of the
database gives nobody API access.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Model
from django.utils import timezone
from django.utils.text import slugify

from audit.codes import Action, EventID, EventType
from audit.context import Actor
from audit.services import record_event

from .mfa import has_second_factor
from .models import ApiToken, Membership, User
from .roles import SERVICE_ACCOUNT_ROLES

SERVICE_ACCOUNT_DOMAIN = "service-accounts.invalid"
# last_used_at is written at most this often per token: a busy client must not write on every call.
LAST_USED_RESOLUTION = timedelta(seconds=60)


class TokenRefused(Exception):
    """The presented key does not authenticate; the message is safe to show the client."""


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def may_hold_token(user: User) -> bool:
    return user.is_active and (user.is_service_account or has_second_factor(user))


@transaction.atomic
def api_token_create(
    *, user: User, name: str, expires_in_days: int | None, created_by: User | None, actor: Actor
) -> tuple[ApiToken, str]:
    """A new token and its key (shown to the caller once, never stored)."""
    days = settings.API_TOKEN_DEFAULT_DAYS if expires_in_days is None else expires_in_days
    if not 1 <= days <= settings.API_TOKEN_MAX_DAYS:
        raise ValidationError({"expires_in_days": f"A token lasts 1 to {settings.API_TOKEN_MAX_DAYS} days."})
    if not user.is_active:
        raise ValidationError({"user": "This account is deactivated."})
    if not may_hold_token(user):
        raise ValidationError(
            {
                "user": "Enrol a second factor (authenticator app) before creating an API token: a token "
                "never gives more than a signed-in session with a second factor."
            }
        )
    key = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name.strip()[:100] or "API token",
        prefix=key[:8],
        digest=key_digest(key),
        created_by=created_by,
        expires_at=timezone.now() + timedelta(days=days),
    )
    _record(token, Action.CREATE, actor, "API token created", expires=token.expires_at.isoformat())
    return token, key


@transaction.atomic
def api_token_revoke(*, token: ApiToken, revoked_by: User | None, actor: Actor) -> ApiToken:
    """Stop a token working from its next use on; it stays listed, as revoked."""
    if token.revoked_at is None:
        token.revoked_at, token.revoked_by = timezone.now(), revoked_by
        token.save(update_fields=["revoked_at", "revoked_by"])
        _record(token, Action.DELETE, actor, "API token revoked")
    return token


def api_token_authenticate(key: str) -> ApiToken:
    """The token a key belongs to, if it may be used now; else TokenRefused saying why."""
    token = ApiToken.objects.select_related("user").filter(digest=key_digest(key)).first()
    if token is None:
        raise TokenRefused("Invalid token.")
    if token.revoked_at is not None:
        raise TokenRefused("This token has been revoked.")
    now = timezone.now()
    if token.expires_at <= now:
        raise TokenRefused("This token has expired: create a new one.")
    if not token.user.is_active:
        raise TokenRefused("User inactive or deleted.")
    if not may_hold_token(token.user):
        raise TokenRefused("Enrol a second factor (authenticator app) before using an API token.")
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def visible_tokens(user: User):
    """A user's own tokens; regional administrators see every token, to revoke any in an incident."""
    from .permissions import is_regional_admin

    tokens = ApiToken.objects.select_related("user", "created_by").order_by("-created_at")
    return tokens if is_regional_admin(user) else tokens.filter(user=user)


def may_revoke(user: User, token: ApiToken) -> bool:
    from .permissions import is_regional_admin

    return token.user_id == user.pk or is_regional_admin(user)


@transaction.atomic
def service_account_create(*, trust: Model, name: str, role: str, actor: Actor) -> User:
    """A machine client of one trust, with one role there; it signs in with API tokens only."""
    if role not in SERVICE_ACCOUNT_ROLES:
        raise ValidationError({"role": "A service account is a clinician, imaging manager or IG officer of one trust."})
    slug = slugify(name)[:40]
    if not slug:
        raise ValidationError({"name": "Give the service account a name (letters or digits)."})
    email = f"{slug}.{trust.ods_code.lower()}@{SERVICE_ACCOUNT_DOMAIN}"
    if User.objects.filter(email=email).exists():
        raise ValidationError({"name": f"{trust.ods_code} already has a service account named {name!r}."})
    account = User.objects.create_user(email=email, password=None, full_name=name.strip()[:150])
    account.is_service_account = True
    account.save(update_fields=["is_service_account"])
    membership = Membership(user=account, trust=trust, role=role)
    membership.full_clean()
    membership.save()
    record_event(
        event_id=EventID.SECURITY_ALERT,
        event_type=EventType.USER_SECURITY_ATTRIBUTES_CHANGED,
        action=Action.CREATE,
        actor=actor,
        trust=trust.ods_code,
        detail={"user": account.email, "change": "service account created", "role": role},
    )
    return account


def _record(token: ApiToken, action: str, actor: Actor, change: str, **extra: str) -> None:
    record_event(
        event_id=EventID.SECURITY_ALERT,
        event_type=EventType.USER_SECURITY_ATTRIBUTES_CHANGED,
        action=action,
        actor=actor,
        subject_user=token.user,
        detail={"user": token.user.email, "change": change, "token": token.fingerprint, "name": token.name, **extra},
    )
