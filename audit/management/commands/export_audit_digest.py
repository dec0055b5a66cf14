"""`manage.py export_audit_digest`: what the daily Celery beat job does, on demand."""

from django.core.management.base import BaseCommand, CommandError

from audit.digest import export_digest


class Command(BaseCommand):
    help = "Verify the audit chain (against the digest files too), then sign, write and email a digest of its head."

    def handle(self, *args: object, **options: object) -> None:
        digest = export_digest()
        if not digest.chain_ok:
            # Written all the same (it records the head as it stands), and the alerts raised; exit 1.
            raise CommandError(
                f"Digest of event #{digest.head_seq} (BROKEN) written to {digest.path}: see the IG console's alerts."
            )
        self.stdout.write(f"Digest of event #{digest.head_seq} (intact) written to {digest.path}")
