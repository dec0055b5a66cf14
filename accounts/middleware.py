"""Session lifetime and the mandatory second factor, enforced on every request."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse

from .mfa import has_second_factor

SIGNED_IN_AT = "portal_signed_in_at"
MFA_CHECKED = "portal_mfa_ok"


class SessionLifetimeMiddleware:
    """End a session SESSION_ABSOLUTE_TIMEOUT seconds after sign-in, however active it has been.

    The idle timeout needs no code: the cookie's age is renewed on each request (SESSION_SAVE_EVERY_REQUEST).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated and hasattr(request, "session"):
            started = request.session.setdefault(SIGNED_IN_AT, time.time())
            if time.time() - started > settings.SESSION_ABSOLUTE_TIMEOUT:
                logout(request)
                messages.info(request, "Your session has ended. Please sign in again.")
                return redirect(settings.LOGIN_URL)
        return self.get_response(request)


class MFARequiredMiddleware:
    """A signed-in member of staff without a second factor can reach nothing but enrolment."""

    ALLOWED_PREFIXES = ("/accounts/2fa/", "/accounts/logout/", "/accounts/reauthenticate/", "/static/", "/healthz")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        exempt = request.path.startswith(self.ALLOWED_PREFIXES)
        if user.is_authenticated and not exempt and not request.session.get(MFA_CHECKED):
            # Checked once per session: the last second factor cannot be removed (accounts.adapters).
            if not has_second_factor(user):
                return self._hold_at_enrolment(request)
            request.session[MFA_CHECKED] = True
        return self.get_response(request)

    def _hold_at_enrolment(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/"):
            return JsonResponse(
                {"detail": "Enrol a second factor (authenticator app) before using the portal."}, status=403
            )
        messages.warning(request, "Set up an authenticator app to continue: every staff account needs one.")
        return redirect(reverse("mfa_activate_totp"))
