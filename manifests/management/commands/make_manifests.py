"""`manage.py make_manifests [--transfer ID ...] [--now]`: manifests for transfers that delivered studies and
have none yet (those that ended before manifests existed, or whose task gave up). Queues the task, or with
--now lists the studies at their destinations in this process."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from dicomkit import GatewayError
from manifests.services import DELIVERED, manifests_for_transfer
from manifests.tasks import make_manifests
from transfers.models import Transfer


class Command(BaseCommand):
    help = "Make the KOS and FHIR manifests of delivered transfers that have none."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--transfer", type=int, action="append", default=[], help="only this transfer (repeatable)")
        parser.add_argument("--now", action="store_true", help="in this process, not by the Celery task")

    def handle(self, *args: object, **options: object) -> None:
        transfers = Transfer.objects.filter(status__in=DELIVERED, manifests__isnull=True)
        if options["transfer"]:
            transfers = transfers.filter(pk__in=options["transfer"])
        for transfer_id in transfers.values_list("pk", flat=True).distinct().order_by("pk"):
            if not options["now"]:
                make_manifests.delay(transfer_id)
                self.stdout.write(f"transfer {transfer_id}: queued")
                continue
            try:
                made = manifests_for_transfer(transfer_id)
            except GatewayError as exc:
                self.stderr.write(f"transfer {transfer_id}: {exc}")
                continue
            self.stdout.write(f"transfer {transfer_id}: {len(made)} manifests")
