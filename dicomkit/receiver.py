"""The portal's own DICOM receiver (Storage SCP): C-MOVE destination and target of pushes."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification
from pynetdicom.transport import ThreadedAssociationServer

from .association import NODELAY_HANDLERS, new_ae
from .config import validate_ae_title
from .dedupe import SqliteIndex
from .intake import ArrivalHook, Intake, Peer, QuarantineHook, Route
from .moves import MoveDestination, MoveRegistry
from .server import ListenerLifecycle
from .spool import file_name_for, sweep_temp_files
from .transcode import ACCEPTED
from .validate import InstanceInfo

log = logging.getLogger(__name__)


class StorageReceiver(ListenerLifecycle):
    """Listens on `port`; stores each instance durably before answering Success.

    Layout under `spool_dir`: `incoming/<study>/<sop>.dcm` for arrivals no job asked for,
    `quarantine/` for refused instances (+ JSON sidecars), `jobs/` for C-MOVE jobs, and
    `received.sqlite`, the index that makes repeats idempotent.
    """

    def __init__(
        self,
        ae_title: str,
        port: int,
        spool_dir: Path | str,
        *,
        bind_address: str = "0.0.0.0",  # noqa: S104 - a receiver must be reachable by trust gateways
        transfer_syntaxes: Iterable[str] = ACCEPTED,
        allowed_calling_aes: Iterable[str] | None = None,
        on_arrival: ArrivalHook | None = None,
        on_quarantine: QuarantineHook | None = None,
        acse_timeout: float = 30.0,
        dimse_timeout: float = 60.0,
        network_timeout: float = 120.0,
    ) -> None:
        self.ae_title = validate_ae_title(ae_title, what="Receiver AE title")
        self.port = int(port)
        self.bind_address = bind_address
        self.spool_dir = Path(spool_dir)
        self.incoming_dir = self.spool_dir / "incoming"
        self.quarantine_dir = self.spool_dir / "quarantine"
        self.jobs_dir = self.spool_dir / "jobs"
        self.registry = MoveRegistry(self.jobs_dir)
        self.index = SqliteIndex(self.spool_dir / "received.sqlite")
        self.intake = Intake(
            incoming_dir=self.incoming_dir,
            quarantine_dir=self.quarantine_dir,
            index=self.index,
            route=self._route,
            on_arrival=on_arrival,
            on_quarantine=on_quarantine,
        )
        self._transfer_syntaxes = list(transfer_syntaxes)
        self._allowed = [validate_ae_title(a) for a in allowed_calling_aes] if allowed_calling_aes else []
        self._timeouts = (acse_timeout, dimse_timeout, network_timeout)
        self._server: ThreadedAssociationServer | None = None

    @property
    def move_destination(self) -> MoveDestination:
        return MoveDestination(self.ae_title, self.jobs_dir)

    def _route(self, info: InstanceInfo, peer: Peer) -> Route:
        job = self.registry.match(
            study=info.study_instance_uid,
            series=info.series_instance_uid,
            sop=info.sop_instance_uid,
            originator_ae=peer.move_originator_ae,
            message_id=peer.move_originator_message_id,
        )
        if job is not None:
            return Route(job.spool_dir, job)
        return Route(self.incoming_dir / file_name_for(info.study_instance_uid, suffix=""))

    def _build_ae(self) -> AE:
        ae = new_ae(self.ae_title)
        ae.acse_timeout, ae.dimse_timeout, ae.network_timeout = self._timeouts
        ae.require_called_aet = True
        if self._allowed:
            ae.require_calling_aet = self._allowed
        ae.add_supported_context(Verification)
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, self._transfer_syntaxes)
        return ae

    def start(self) -> StorageReceiver:
        """Start listening in background threads."""
        for folder in (self.incoming_dir, self.quarantine_dir, self.jobs_dir):
            folder.mkdir(parents=True, exist_ok=True)
        sweep_temp_files(self.incoming_dir)
        ae = self._build_ae()
        handlers = [*NODELAY_HANDLERS, (evt.EVT_C_STORE, self.intake.handle_store)]
        self._server = ae.start_server((self.bind_address, self.port), block=False, evt_handlers=handlers)
        log.info("DICOM receiver %s listening on %s:%s", self.ae_title, self.bind_address, self.port)
        return self
