"""`manage.py export_audit_digest`: what the daily Celery beat job does, on demand."""

from django.core.management.base import BaseCommand

from audit.digest import export_digest


class Command(BaseCommand):
    help = "Verify the audit chain since the last digest, then sign, write and email a digest of its head."

    def handle(self, *args: object, **options: object) -> None:
        digest = export_digest()
        state = "intact" if digest.chain_ok else "BROKEN"
        self.stdout.write(f"Digest of event #{digest.head_seq} ({state}) written to {digest.path}")
