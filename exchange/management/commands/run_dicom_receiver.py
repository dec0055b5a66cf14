"""manage.py run_dicom_receiver: the portal's DICOM receiver (Storage SCP), C-MOVE destination of every gateway."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dicomkit.errors import ConfigurationError
from exchange.receiver import build_receiver


class Command(BaseCommand):
    help = "Run the portal's DICOM receiver on DICOM_AE_TITLE / DICOM_PORT, spooling under SPOOL_DIR."

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stopping = threading.Event()

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--ae", default=None, help="AE title (default: DICOM_AE_TITLE)")
        parser.add_argument("--port", type=int, default=None, help="port (default: DICOM_PORT)")
        parser.add_argument("--spool", default=None, help="spool folder (default: SPOOL_DIR)")
        parser.add_argument("--bind", default="0.0.0.0", help="address to listen on (default: all)")  # noqa: S104

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            receiver = build_receiver(
                ae_title=options["ae"], port=options["port"], spool_dir=options["spool"], bind=options["bind"]
            )
            receiver.start()
        except (ConfigurationError, OSError) as exc:
            raise CommandError(f"Cannot start the DICOM receiver: {exc}") from exc
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: self.stopping.set())
        self.stdout.write(
            f"DICOM receiver {receiver.ae_title} listening on {receiver.bind_address}:{receiver.port}, "
            f"spool {receiver.spool_dir} (database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]})"
        )
        self.stdout.flush()
        try:
            while not self.stopping.wait(1.0):
                pass
        finally:
            receiver.stop()
            self.stdout.write("DICOM receiver stopped.")
