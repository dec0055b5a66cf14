"""manage.py run_sim_pacs: a simulated trust PACS for development and the demo."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dicomkit.errors import ConfigurationError
from dicomkit.sim.pacs import SimulatedPacs, parse_destination
from dicomkit.transcode import ACCEPTED, UNCOMPRESSED


class Command(BaseCommand):
    help = "Run a simulated trust PACS (C-ECHO, C-FIND, C-GET, C-MOVE, C-STORE) over a folder of DICOM files."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--ae", required=True, help="AE title of the simulated PACS")
        parser.add_argument("--port", required=True, type=int, help="DICOM port to listen on")
        parser.add_argument("--storage", required=True, help="folder of DICOM files (indexed in index.sqlite)")
        parser.add_argument(
            "--move-destination",
            action="append",
            default=[],
            metavar="AE=HOST:PORT",
            help="a C-MOVE destination; repeat for several",
        )
        parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        parser.add_argument(
            "--uncompressed-only",
            action="store_true",
            help="accept only Explicit/Implicit VR Little Endian, like an old PACS",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            destinations = dict(parse_destination(d) for d in options["move_destination"])
            pacs = SimulatedPacs(
                options["ae"],
                options["port"],
                options["storage"],
                bind_address=options["bind"],
                move_destinations=destinations,
                transfer_syntaxes=UNCOMPRESSED if options["uncompressed_only"] else ACCEPTED,
            )
        except (ValueError, ConfigurationError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Simulated PACS {pacs.ae_title} listening on {pacs.bind_address}:{pacs.port}, "
            f"storage {pacs.storage}; move destinations: {', '.join(destinations) or 'none'}"
        )
        self.stdout.flush()
        try:
            pacs.start(block=True)
        except KeyboardInterrupt:
            pass
        finally:
            pacs.stop()
