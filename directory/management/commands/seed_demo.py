"""`manage.py seed_demo`: the demo region (trusts, gateways, agreements, one user per role per trust)."""

from directory.demo import DEMO_PASSWORD, seed_region

from ._demo_only import DemoOnlyCommand


class Command(DemoOnlyCommand):
    help = "Create or refresh the synthetic demo region. Safe to run again. Demo machines only (DEBUG=1)."

    def handle(self, *args: object, **options: object) -> None:
        users = seed_region()
        self.stdout.write(
            self.style.SUCCESS(f"Demo region ready: {len(users)} demo users, password {DEMO_PASSWORD!r}.")
        )
        from exchange.demo import generate_demo_studies  # the demo PACS images; skipped once written

        written = generate_demo_studies()
        if written:
            self.stdout.write(f"Demo studies written: {', '.join(f'{k} {v}' for k, v in written.items())}.")
