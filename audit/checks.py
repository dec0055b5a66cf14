"""Deployment checks for the audit trail (`manage.py check --deploy`)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Info, Tags, Warning, register


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


@register(Tags.database)
def audit_role(app_configs, databases=None, **kwargs) -> list:
    """`check --database default` (and `migrate`): may the portal's role rewrite the audit trail?"""
    from django.db import DEFAULT_DB_ALIAS, connections

    from .dbroles import privilege_problems

    if not databases or DEFAULT_DB_ALIAS not in databases:
        return []
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        problems = privilege_problems(cursor)
    return [
        Warning(
            f"Audit trail: {problem}.",
            hint="Run the portal as a role that does not own the tables and migrate as the owner: set "
            "MIGRATION_DATABASE_URL (docs/audit.md, 'Tamper resistance').",
            id="audit.W002",
        )
        for problem in problems
    ]
