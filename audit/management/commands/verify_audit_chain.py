"""`manage.py verify_audit_chain`: exit 0 when the audit hash chain is intact, 1 with the first break.

`--digest FILE` (repeatable) also checks that the chain still passes through the head each exported
digest vouched for, which is what catches a chain rewritten end to end inside the database.
"""

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from django.core.management.base import BaseCommand, CommandError

from audit.digest import check_digest
from audit.services import verify_chain


class Command(BaseCommand):
    help = "Verify the audit trail's SHA-256 hash chain and report the first broken link."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--from-seq", type=int, default=1, help="Start at this event (default: the first).")
        parser.add_argument("--digest", action="append", default=[], help="A digest file to check against.")
        parser.add_argument("--public-key", help="Ed25519 public key (PEM) the digests were signed with.")

    def handle(self, *args: object, **options) -> None:
        report = verify_chain(from_seq=options["from_seq"])
        if not report.ok:
            raise CommandError(f"Audit chain broken at event #{report.first_broken_seq}: {report.problem}")
        public_key = None
        if options["public_key"]:
            public_key = serialization.load_pem_public_key(Path(options["public_key"]).read_bytes())
        for name in options["digest"]:
            check = check_digest(json.loads(Path(name).read_text()), public_key)
            if not check.ok:
                raise CommandError(f"Digest {name}: {check.problem}")
            self.stdout.write(f"Digest {name}: the chain still passes through its head.")
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {report.events_checked} events verified."))
