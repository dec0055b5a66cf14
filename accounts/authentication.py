"""DRF token authentication (`Authorization: Token <key>`) with the portal's hashed, expiring tokens
(accounts.tokens), putting API token use on the audit trail.

A machine client may call the API thousands of times an hour; one 110114 "API token used" event per
token per AUDIT_TOKEN_USE_INTERVAL seconds says the token was in use, from where, without flooding the
chain (each call's own events, a search, a view, still name the token in `actor_ref`). Refused tokens
are recorded too, at most once per client address per minute, so a guessing attack is visible but
cannot fill the trail.
"""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication, get_authorization_header

from audit import catalogue
from audit.codes import Outcome
from audit.context import anonymous_actor, token_actor, token_fingerprint

from .tokens import TokenRefused, api_token_authenticate

REFUSAL_INTERVAL = 60


class AuditedTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        try:
            token = api_token_authenticate(key)
        except TokenRefused as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from exc
        return token.user, token

    def authenticate(self, request):
        try:
            result = super().authenticate(request)
        except exceptions.AuthenticationFailed as exc:
            self._record_refusal(request, str(exc.detail))
            raise
        if result is not None:
            self._record_use(request, *result)
        return result

    def _record_use(self, request, user, token) -> None:
        fingerprint = token.fingerprint
        interval = settings.AUDIT_TOKEN_USE_INTERVAL
        if interval and not cache.add(f"audit:token-use:{fingerprint}", 1, timeout=interval):
            return
        # request._request: the DRF request is mid-authentication, and asking it for its user would recurse.
        catalogue.API_TOKEN_USED.record(
            actor=token_actor(request._request, user, token),
            detail={"method": request.method, "path": request.path[:200]},
        )

    def _record_refusal(self, request, why: str) -> None:
        actor = anonymous_actor(request._request)
        if not cache.add(f"audit:token-refused:{actor.client_ip}", 1, timeout=REFUSAL_INTERVAL):
            return
        header = get_authorization_header(request).split()
        presented = header[1].decode(errors="replace") if len(header) == 2 else ""
        catalogue.API_TOKEN_USED.record(
            actor=actor,
            outcome=Outcome.MINOR_FAILURE,
            detail={
                "refused": why,
                "token": token_fingerprint(presented) if presented else "",
                "path": request.path[:200],
                "note": f"further refusals from this address within {REFUSAL_INTERVAL} s are not recorded",
            },
        )
