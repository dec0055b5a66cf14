"""`manage.py drf_create_token <email>`: DRF's command, for the portal's hashed, expiring tokens.

The key is printed once and never stored. Refused for a user with no second factor (unless a service
account), as the API and the token page refuse it: a token never gives more than a signed-in session.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts import tokens
from accounts.models import User
from audit.context import system_actor


class Command(BaseCommand):
    help = "Create an API token for a user (hashed, expiring) and print its key once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username", help="the user's email address")
        parser.add_argument("-r", "--reset", action="store_true", help="revoke the user's other tokens first")
        parser.add_argument("--name", default="made with drf_create_token", help="what the token is for")
        parser.add_argument(
            "--days", type=int, default=None, help="days until it expires (default: API_TOKEN_DEFAULT_DAYS)"
        )

    def handle(self, *args: object, **options) -> None:
        user = User.objects.filter(email__iexact=options["username"].strip()).first()
        if user is None:
            raise CommandError(f"Cannot create the Token: user {options['username']} does not exist")
        actor = system_actor("manage.py drf_create_token")
        if options["reset"]:
            for token in user.api_tokens.filter(revoked_at__isnull=True):
                tokens.api_token_revoke(token=token, revoked_by=None, actor=actor)
        try:
            token, key = tokens.api_token_create(
                user=user, name=options["name"], expires_in_days=options["days"], created_by=None, actor=actor
            )
        except ValidationError as exc:
            raise CommandError("Cannot create the Token: " + " ".join(exc.messages)) from exc
        self.stdout.write(f"Generated token {key} for user {user.email}")
        self.stdout.write(
            f"It expires {token.expires_at:%Y-%m-%d %H:%M %Z}. Keep it now: only its hash is stored.",
            self.style.WARNING,
        )
