"""The portal's own DICOM receiver (Storage SCP): C-MOVE destination and target of pushes."""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

from .admission import Admission, AdmittingServer, AllowList, RefusalHook
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

    Who may call and how many at once is `admission`'s business: with an `allow_list`, only its callers
    (calling AE title at a known address); always at most `max_associations`, `max_per_peer` for one
    caller. Associations idle for `network_timeout` seconds are aborted. Data sets are written to disk
    as they arrive (see `association.configure_pynetdicom`), so memory does not grow with instance size.
    With `decode_check`, an instance whose first compressed frame our decoders cannot decode is stored
    and flagged (`Arrival.pixel_warning`); one whose frame header is impossible is quarantined (`pixels`).
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
        allow_list: AllowList | None = None,
        max_associations: int = 50,
        max_per_peer: int = 10,
        decode_check: bool = True,
        on_arrival: ArrivalHook | None = None,
        on_quarantine: QuarantineHook | None = None,
        on_refused: RefusalHook | None = None,
        acse_timeout: float = 10.0,
        dimse_timeout: float = 60.0,
        network_timeout: float = 60.0,
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
            decode_check=decode_check,
        )
        self._transfer_syntaxes = list(transfer_syntaxes)
        self._allowed = [validate_ae_title(a) for a in allowed_calling_aes] if allowed_calling_aes else []
        self._timeouts = (acse_timeout, dimse_timeout, network_timeout)
        self.admission = Admission(
            allow_list=allow_list, max_associations=max_associations, max_per_peer=max_per_peer, on_refused=on_refused
        )
        self._server: AdmittingServer | None = None

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
        # Admission counts only the associations it let in; pynetdicom's own count (every connection,
        # silent ones too) must never refuse before it does.
        ae.maximum_associations = 10 * self.admission.max_associations
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
        if self.admission.allow_list is not None:
            self.admission.allow_list.start()
        ae = self._build_ae()
        handlers = [
            *NODELAY_HANDLERS,
            *self.admission.handlers(),
            (evt.EVT_C_STORE, self.intake.handle_store),
        ]
        try:
            server = ae.make_server(
                (self.bind_address, self.port),
                evt_handlers=handlers,
                server_class=AdmittingServer,
                admission=self.admission,
            )
        except BaseException:
            if self.admission.allow_list is not None:
                self.admission.allow_list.stop()
            raise
        threading.Thread(target=server.serve_forever, name=f"receiver-{self.port}", daemon=True).start()
        ae._servers.append(server)  # as ae.start_server does, so that ae.shutdown() finds it
        self._server = server
        log.info(
            "DICOM receiver %s listening on %s:%s (data sets spooled under %s while they arrive)",
            self.ae_title,
            self.bind_address,
            self.port,
            tempfile.gettempdir(),
        )
        return self

    def stop(self) -> None:
        if self.admission.allow_list is not None:
            self.admission.allow_list.stop()
        super().stop()
