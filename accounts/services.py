"""Writing to staff accounts and memberships: invite, (de)activate, grant and revoke roles."""

from __future__ import annotations

from allauth.account.forms import default_token_generator
from allauth.account.models import EmailAddress
from allauth.account.utils import user_pk_to_url_str
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Model
from django.template.loader import render_to_string
from django.urls import reverse

from audit.codes import Action, EventID, EventType
from audit.context import Actor
from audit.services import record_event

from .models import Membership, SignInSession, User


def invitation_url(user: User) -> str:
    """A set-your-password link (allauth's password reset), valid for PASSWORD_RESET_TIMEOUT."""
    path = reverse(
        "account_reset_password_from_key",
        kwargs={"uidb36": user_pk_to_url_str(user), "key": default_token_generator.make_token(user)},
    )
    return settings.SITE_URL + path


@transaction.atomic
def user_invite(*, email: str, full_name: str, actor: Actor) -> User:
    """Create a staff account with no usable password and email them a link to set one and enrol MFA."""
    user = User.objects.create_user(email=email, password=None, full_name=full_name)
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=False)
    record_event(
        event_id=EventID.SECURITY_ALERT,
        event_type=EventType.USER_SECURITY_ATTRIBUTES_CHANGED,
        action=Action.CREATE,
        actor=actor,
        detail={"user": user.email, "change": "account created"},
    )
    transaction.on_commit(lambda: _send_invitation(user))
    return user


def _send_invitation(user: User) -> None:
    body = render_to_string("accounts/email/invitation.txt", {"user": user, "url": invitation_url(user)})
    send_mail(
        "[Image Exchange] Your account: set a password and an authenticator",
        body,
        None,
        [user.email],
    )


@transaction.atomic
def user_update(*, user: User, actor: Actor, full_name: str | None = None, is_active: bool | None = None) -> User:
    changes: dict[str, object] = {}
    if full_name is not None and full_name != user.full_name:
        user.full_name, changes["full_name"] = full_name, full_name
    if is_active is not None and is_active != user.is_active:
        user.is_active, changes["is_active"] = is_active, is_active
    if not changes:
        return user
    user.save(update_fields=list(changes))
    if changes.get("is_active") is False:
        end_sessions(user)
    record_event(
        event_id=EventID.SECURITY_ALERT,
        event_type=EventType.USER_SECURITY_ATTRIBUTES_CHANGED,
        action=Action.UPDATE,
        actor=actor,
        detail={"user": user.email, **changes},
    )
    return user


def end_sessions(user: User) -> int:
    """Delete every session the user signed in with; their next request is anonymous."""
    keys = list(SignInSession.objects.filter(user=user).values_list("session_key", flat=True))
    deleted, _ = Session.objects.filter(session_key__in=keys).delete()
    SignInSession.objects.filter(user=user).delete()
    return deleted


@transaction.atomic
def membership_create(*, user: User, trust: Model, role: str, actor: Actor) -> Membership:
    """`trust`: a directory.Trust (accounts sits below directory and does not import it)."""
    membership = Membership(user=user, trust_id=trust.pk, role=role)
    membership.full_clean()
    membership.save()
    _record_role_change(membership, Action.CREATE, actor)
    return membership


@transaction.atomic
def membership_delete(*, membership: Membership, actor: Actor) -> None:
    _record_role_change(membership, Action.DELETE, actor)
    membership.delete()


def _record_role_change(membership: Membership, action: Action, actor: Actor) -> None:
    record_event(
        event_id=EventID.SECURITY_ALERT,
        event_type=EventType.SECURITY_ROLES_CHANGED,
        action=action,
        actor=actor,
        trust=membership.trust.ods_code,
        detail={"user": membership.user.email, "role": membership.role},
    )
