"""`manage.py demo_totp [EMAIL]`: the current authenticator codes of demo users (no phone needed)."""

from django.core.management.base import CommandError

from accounts.models import User
from directory.demo import DEMO_EMAIL_DOMAIN, DemoOnlyCommand, current_totp, demo_totp_secret


class Command(DemoOnlyCommand):
    help = "Print demo users' TOTP secrets and the code valid now. Demo accounts, demo machines (DEBUG=1) only."

    def add_arguments(self, parser) -> None:
        parser.add_argument("email", nargs="?", help="One demo user's email; all demo users when omitted.")

    def handle(self, *args: object, email: str | None = None, **options: object) -> None:
        if email and not email.endswith("@" + DEMO_EMAIL_DOMAIN):
            raise CommandError("Only demo accounts have derivable secrets.")
        emails = (
            [email]
            if email
            else list(User.objects.filter(email__endswith="@" + DEMO_EMAIL_DOMAIN).values_list("email", flat=True))
        )
        for address in emails:
            secret = demo_totp_secret(address)
            self.stdout.write(f"{address:45} code {current_totp(secret)}   secret {secret}")
