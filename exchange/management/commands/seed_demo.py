"""`manage.py seed_demo`: the demo region (trusts, gateways, agreements, one user per role per trust) and
the demo PACS's studies."""

from django.apps import apps
from django.core.management import call_command

from directory.demo import DEMO_PASSWORD, DemoOnlyCommand, seed_region
from exchange.demo import generate_demo_studies


class Command(DemoOnlyCommand):
    help = "Create or refresh the synthetic demo region. Safe to run again. Demo machines only (DEBUG=1)."

    def handle(self, *args: object, **options: object) -> None:
        users = seed_region()
        self.stdout.write(
            self.style.SUCCESS(f"Demo region ready: {len(users)} demo users, password {DEMO_PASSWORD!r}.")
        )
        # the demo PACS images; skipped once written

        written = generate_demo_studies()
        if written:
            self.stdout.write(f"Demo studies written: {', '.join(f'{k} {v}' for k, v in written.items())}.")
        if apps.is_installed("copies"):  # an app above this one: reached by its command, not imported
            call_command("seed_copies_demo", stdout=self.stdout)
