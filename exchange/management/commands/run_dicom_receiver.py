"""manage.py run_dicom_receiver: the portal's DICOM receiver (Storage SCP), C-MOVE destination of every gateway."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from dicomkit.errors import ConfigurationError
from exchange.receiver import build_receiver, receiver_spool


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
        previous_tempdir = tempfile.tempdir
        try:
            self._serve(options)
        finally:
            tempfile.tempdir = previous_tempdir  # this command may run inside another process (the tests)

    def _serve(self, options: dict[str, Any]) -> None:
        in_flight = self._in_flight_folder(receiver_spool(options["spool"]))
        try:
            receiver = build_receiver(
                ae_title=options["ae"], port=options["port"], spool_dir=options["spool"], bind=options["bind"]
            )
            receiver.start()
        except (ConfigurationError, OSError) as exc:
            raise CommandError(f"Cannot start the DICOM receiver: {exc}") from exc
        except DatabaseError as exc:
            raise CommandError(f"Cannot start the DICOM receiver: cannot read the gateway directory ({exc})") from exc
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: self.stopping.set())
        admission = receiver.admission
        self.stdout.write(
            f"DICOM receiver {receiver.ae_title} listening on {receiver.bind_address}:{receiver.port}, "
            f"spool {receiver.spool_dir}, data sets in flight in {in_flight} "
            f"(database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}); "
            f"callers: the gateway directory, re-read every {settings.DICOM_RECEIVER_ALLOW_LIST_REFRESH:g} s; "
            f"at most {admission.max_associations} associations, {admission.max_per_peer} per peer"
        )
        self.stdout.flush()
        try:
            while not self.stopping.wait(1.0):
                pass
        finally:
            receiver.stop()
            self.stdout.write("DICOM receiver stopped.")

    @staticmethod
    def _in_flight_folder(spool: Path) -> str:
        """pynetdicom writes each data set to a temporary file as it arrives; keep those on the spool's disk
        (not a tmpfs /tmp, which is memory) in a folder of our own, emptied of a crashed run's leftovers.
        An operator's TMPDIR wins."""
        if os.environ.get("TMPDIR"):
            return tempfile.gettempdir()
        folder = spool / "in-flight"
        folder.mkdir(parents=True, exist_ok=True)
        for leftover in folder.iterdir():
            if leftover.is_file():
                leftover.unlink(missing_ok=True)
        tempfile.tempdir = str(folder)
        return str(folder)
