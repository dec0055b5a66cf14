"""The base of the demo commands, which refuse to run unless DEBUG is on (Django skips `_` modules)."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class DemoOnlyCommand(BaseCommand):
    """A command that creates or reveals the demo's published credentials.

    DEBUG is the one setting a production deployment must never have on, so it is what tells a demo
    machine from a real one: on a real one these commands would make superusers whose password is in
    the README and TOTP secrets anyone can compute from an email address.
    """

    def execute(self, *args: object, **options: object) -> str | None:
        if not settings.DEBUG:
            raise CommandError(
                f"{self._name()} is for demo machines only and refuses to run with DEBUG off: it would create "
                "or reveal accounts whose password and second factor are public. Run it with DEBUG=1 "
                "(as `make demo` does), never against a production database."
            )
        return super().execute(*args, **options)

    def _name(self) -> str:
        return type(self).__module__.rsplit(".", 1)[-1]
