"""Deployment checks for the audit trail (`manage.py check --deploy`)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Info, Tags, register


@register(Tags.security, deploy=True)
def digest_signing(app_configs, **kwargs) -> list:
    if settings.AUDIT_DIGEST_SIGNING_KEY_FILE:
        return []
    return [
        Info(
            "Audit chain digests are signed with HMAC keyed from SECRET_KEY, so only holders of the secret "
            "can check them (or forge them).",
            hint="Set AUDIT_DIGEST_SIGNING_KEY_FILE to an Ed25519 private key (PEM) and give IG officers the "
            "public key: `openssl genpkey -algorithm ed25519 -out digest.pem`.",
            id="audit.I001",
        )
    ]
