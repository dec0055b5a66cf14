"""Helpers the tests import: making staff users, signing them in, and finding external tools."""

from __future__ import annotations

import os
import shutil
import time

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.totp.internal.auth import TOTP
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import Membership, User
from directory.demo import current_totp
from directory.models import Trust

PASSWORD = "correct horse battery staple"
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def require(ok: bool, what: str) -> None:
    """A test's prerequisite: on a developer machine its absence skips; under CI=true it fails."""
    if ok:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what}; CI must provide it (see .ci/run)")
    else:
        pytest.skip(what)


def require_tool(path_or_name: str, what: str) -> str:
    """The path of an external tool; under CI=true its absence fails the test, elsewhere it skips."""
    found = path_or_name if os.path.isabs(path_or_name) and os.path.exists(path_or_name) else shutil.which(path_or_name)
    require(bool(found), f"{what} ({path_or_name}) is not installed")
    return found


def make_user(email: str, *, mfa: bool = True) -> User:
    user = User.objects.create_user(email=email, password=PASSWORD, full_name=email.split("@")[0].title())
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    if mfa:
        TOTP.activate(user, TOTP_SECRET)
    return user


def grant(user: User, trust: Trust, role: str) -> User:
    Membership.objects.create(user=user, trust=trust, role=role)
    return user


def totp_code() -> str:
    """The code an authenticator app shows now, with time left to use it: allauth accepts only the
    current 30-second step, and a code read in its last seconds may be stale by the time a loaded
    machine submits it (a browser test saw exactly that)."""
    if time.time() % 30 > 24:
        time.sleep(30 - time.time() % 30 + 0.5)
    return current_totp(TOTP_SECRET)


def signed_in(user: User) -> Client:
    """A browser session past password and second factor."""
    client = Client()
    client.force_login(user)
    return client


def make_token(user: User, **kwargs: object) -> str:
    """A new API token's key, made as the token page makes one."""
    from accounts.tokens import api_token_create
    from audit.context import SYSTEM

    kwargs.setdefault("expires_in_days", None)
    _token, key = api_token_create(
        user=user, name=kwargs.pop("name", "test client"), created_by=user, actor=SYSTEM, **kwargs
    )
    return key


def api_as(user: User, *, token: bool | str = False) -> APIClient:
    """An API client: signed in as a browser would be, or sending a token (a new one, or the key given)."""
    client = APIClient()
    if token:
        client.credentials(HTTP_AUTHORIZATION=f"Token {token if isinstance(token, str) else make_token(user)}")
    else:
        client.force_login(user)
    return client
