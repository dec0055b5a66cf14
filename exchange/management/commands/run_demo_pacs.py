"""manage.py run_demo_pacs ODS: the simulated PACS of one demo trust, its C-MOVE destination our receiver."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from exchange.demo import pacs_dir, sim_pacs_address


class Command(BaseCommand):
    help = "Run a demo trust's simulated PACS on the AE title and port seed_demo registered for it."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("ods_code", help="a demo trust, e.g. R0A")

    def handle(self, *args: Any, **options: Any) -> None:
        ods = options["ods_code"].upper()
        try:
            ae_title, port = sim_pacs_address(ods)
        except KeyError as exc:
            raise CommandError(str(exc)) from exc
        call_command(
            "run_sim_pacs",
            ae=ae_title,
            port=port,
            storage=str(pacs_dir(ods)),
            move_destination=[f"{settings.DICOM_AE_TITLE}=127.0.0.1:{settings.DICOM_PORT}"],
        )
