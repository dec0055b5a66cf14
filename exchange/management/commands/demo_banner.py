"""`manage.py demo_banner`: what `make demo` prints before starting: the URL and how to sign in."""

from django.core.management.base import BaseCommand

from accounts.roles import Role
from dicomkit.nhs import format_nhs
from directory.demo import DEMO_PASSWORD, TRUSTS, demo_email
from exchange.demo import demo_patients_at


class Command(BaseCommand):
    help = "Print the demo's address and sign-in details."

    def handle(self, *args: object, **options: object) -> None:
        w = self.stdout.write
        w("")
        w(self.style.SUCCESS("Regional Image Exchange demo: http://127.0.0.1:8000"))
        w(f"Every demo user's password: {DEMO_PASSWORD}")
        w("Second factor: run `.venv/bin/python manage.py demo_totp EMAIL` (DEBUG=1) for the current code,")
        w("or add the printed secret to any authenticator app.")
        w("")
        for spec in TRUSTS:
            w(f"  {spec.ods_code}  {spec.name}")
            for role in Role:
                w(f"       {role.label:32} {demo_email(role, spec.ods_code)}")
        w("")
        w("Synthetic patients to search for (Studies in the menu), by NHS number:")
        for ods_code in ("R0A", "R0B", "R0C", "NV0"):
            found = ", ".join(f"{p['name']} {format_nhs(p['nhs_number'])}" for p in demo_patients_at(ods_code))
            w(f"  {ods_code}  {found}")
        w("")
        w("Ctrl-C stops everything.")
        w("")
