"""Where allauth's own views need the project's rules on top."""

from __future__ import annotations

from allauth.mfa.adapter import get_adapter
from allauth.mfa.models import Authenticator
from allauth.mfa.webauthn import views as webauthn_views
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect


def remove_webauthn(request: HttpRequest, pk: int) -> HttpResponse:
    """allauth's removal of a security key, which (unlike its TOTP form) does not ask the adapter whether
    the key may go: the last second factor stays until another one is enrolled."""
    if request.method == "POST" and request.user.is_authenticated:
        key = Authenticator.objects.filter(user=request.user, type=Authenticator.Type.WEBAUTHN, pk=pk).first()
        if key is not None and not get_adapter().can_delete_authenticator(key):
            messages.error(
                request, "This is your only second factor: add another key or an authenticator app before removing it."
            )
            return redirect("mfa_list_webauthn")
    return webauthn_views.remove_webauthn(request, pk=pk)
