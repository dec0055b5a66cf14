"""`manage.py seed_copies_demo`: the demo's procedure code mapping tables (run by seed_demo)."""

from copies.demo import seed_procedure_mappings
from directory.demo import DemoOnlyCommand


class Command(DemoOnlyCommand):
    help = "Load the synthetic procedure code mapping table for every demo trust. Demo machines only (DEBUG=1)."

    def handle(self, *args: object, **options: object) -> None:
        trusts = seed_procedure_mappings()
        self.stdout.write(f"Demo procedure code mapping loaded for {trusts} trusts.")
