"""`manage.py verify_audit_chain`: exit 0 when the audit hash chain is intact, 1 with the first break."""

from django.core.management.base import BaseCommand, CommandError

from audit.services import verify_chain


class Command(BaseCommand):
    help = "Verify the audit trail's SHA-256 hash chain and report the first broken link."

    def handle(self, *args: object, **options: object) -> None:
        report = verify_chain()
        if not report.ok:
            raise CommandError(f"Audit chain broken at event #{report.first_broken_seq}: {report.problem}")
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {report.events_checked} events verified."))
