"""`manage.py verify_audit_chain`: exit 0 when the audit trail is intact, 1 with everything found wrong.

The chain is walked and the database checked against every signed digest file in AUDIT_DIGEST_DIR
(or `--digest-dir`, e.g. a copy kept by the IG team): a trail rewritten, truncated or emptied inside the
database, a digest file missing or altered, a missing day. `--digest FILE` (repeatable) checks
further digest documents, e.g. one kept from an email.
"""

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from audit.digest import check_digest, verify_anchored


class Command(BaseCommand):
    help = "Verify the audit trail's SHA-256 hash chain against itself and the signed digest files."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--from-seq", type=int, default=1, help="Start at this event (default: the first).")
        parser.add_argument(
            "--since-last-digest", action="store_true", help="Walk only the events after the newest digest's head."
        )
        parser.add_argument("--digest-dir", help="Digest files to check against (default: AUDIT_DIGEST_DIR).")
        parser.add_argument("--digest", action="append", default=[], help="A further digest file to check against.")
        parser.add_argument("--public-key", help="Ed25519 public key (PEM) the digests were signed with.")

    def handle(self, *args: object, **options) -> None:
        public_key = None
        if options["public_key"]:
            public_key = serialization.load_pem_public_key(Path(options["public_key"]).read_bytes())
        verification = verify_anchored(
            since_last_digest=options["since_last_digest"],
            from_seq=options["from_seq"],
            directory=options["digest_dir"],
            public_key=public_key,
        )
        report = verification.report
        if not report.ok:
            where = f"broken at event #{report.first_broken_seq}" if report.first_broken_seq else "not intact"
            lines = [f"Audit chain {where}: {report.problem}"]
            lines += [f"  and: {problem}" for problem in report.anchor_problems if problem != report.problem]
            raise CommandError("\n".join(lines))
        for name in options["digest"]:
            check = check_digest(json.loads(Path(name).read_text()), public_key)
            if not check.ok:
                raise CommandError(f"Digest {name}: {check.problem}")
            self.stdout.write(f"Digest {name}: the chain still passes through its head.")
        self.stdout.write(
            self.style.SUCCESS(
                f"Audit chain intact: {report.events_checked} events verified from #{report.from_seq}, "
                f"the database agreeing with {report.digests_checked} digest file(s) in "
                f"{options['digest_dir'] or settings.AUDIT_DIGEST_DIR}."
            )
        )
