"""Sign-in, sign-out, failed sign-in and second-factor events go to the audit trail from day one."""

from __future__ import annotations

import time

from allauth.account import signals as account_signals
from allauth.account.models import EmailAddress
from allauth.mfa import signals as mfa_signals
from django.contrib.auth import signals as auth_signals
from django.dispatch import receiver
from django.http import HttpRequest

from audit.codes import Action, EventID, EventType, Outcome
from audit.context import actor_from_request
from audit.services import record_event

from .middleware import MFA_CHECKED, SIGNED_IN_AT
from .models import SignInSession


@receiver(auth_signals.user_logged_in)
def on_signed_in(sender, request: HttpRequest | None, user, **kwargs) -> None:
    if request is None:
        return
    request.session[SIGNED_IN_AT] = time.time()
    request.session[MFA_CHECKED] = False
    if request.session.session_key is None:
        request.session.save()
    SignInSession.objects.create(user=user, session_key=request.session.session_key)
    record_event(
        event_id=EventID.USER_AUTHENTICATION,
        event_type=EventType.LOGIN,
        action=Action.EXECUTE,
        actor=actor_from_request(request, user),
    )


@receiver(auth_signals.user_logged_out)
def on_signed_out(sender, request: HttpRequest | None, user, **kwargs) -> None:
    if request is None or user is None:
        return
    record_event(
        event_id=EventID.USER_AUTHENTICATION,
        event_type=EventType.LOGOUT,
        action=Action.EXECUTE,
        actor=actor_from_request(request, user),
    )


@receiver(auth_signals.user_login_failed)
def on_sign_in_failed(sender, credentials: dict, request: HttpRequest | None = None, **kwargs) -> None:
    # Django has already masked the password in `credentials`; keep only the name that was tried.
    tried = str(credentials.get("email") or credentials.get("username") or "")[:254]
    record_event(
        event_id=EventID.USER_AUTHENTICATION,
        event_type=EventType.LOGIN,
        action=Action.EXECUTE,
        outcome=Outcome.MINOR_FAILURE,
        request=request,
        detail={"attempted_email": tried, "step": "password"},
    )


@receiver(mfa_signals.authentication_failed)
def on_second_factor_failed(sender, request: HttpRequest, user, authenticator, **kwargs) -> None:
    record_event(
        event_id=EventID.USER_AUTHENTICATION,
        event_type=EventType.LOGIN,
        action=Action.EXECUTE,
        outcome=Outcome.MINOR_FAILURE,
        actor=actor_from_request(request, user),
        detail={"step": "second_factor", "authenticator": authenticator.type},
    )


def _second_factor_changed(change: str):
    def handler(sender, request: HttpRequest, user, authenticator, **kwargs) -> None:
        record_event(
            event_id=EventID.SECURITY_ALERT,
            event_type=EventType.USER_SECURITY_ATTRIBUTES_CHANGED,
            action=Action.DELETE if change == "removed" else Action.UPDATE,
            actor=actor_from_request(request, user),
            detail={"second_factor": change, "authenticator": authenticator.type},
        )

    return handler


on_authenticator_added = _second_factor_changed("added")
on_authenticator_removed = _second_factor_changed("removed")
on_authenticator_reset = _second_factor_changed("reset")
mfa_signals.authenticator_added.connect(on_authenticator_added)
mfa_signals.authenticator_removed.connect(on_authenticator_removed)
mfa_signals.authenticator_reset.connect(on_authenticator_reset)


@receiver(account_signals.password_reset)
def on_password_reset(sender, request: HttpRequest, user, **kwargs) -> None:
    # The reset link went to the address on file, so following it proves the address: this is how an
    # invited member of staff, whose account an administrator created, gets a verified email.
    EmailAddress.objects.filter(user=user, email__iexact=user.email).update(verified=True)
    record_event(
        event_id=EventID.SECURITY_ALERT,
        event_type=EventType.USER_SECURITY_ATTRIBUTES_CHANGED,
        action=Action.UPDATE,
        actor=actor_from_request(request, user),
        detail={"change": "password set by reset link"},
    )
