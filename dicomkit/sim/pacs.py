"""A simulated trust PACS: C-ECHO, Study Root C-FIND / C-GET / C-MOVE and C-STORE over a folder.

Enough of a real PACS to develop and demo against without one: it indexes its folder in SQLite,
answers names in the character set they were stored in, and converts compressed instances for
peers that only take uncompressed syntaxes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE, AllStoragePresentationContexts, build_context, evt
from pynetdicom.association import Association
from pynetdicom.pdu import A_ABORT_RQ, A_RELEASE_RQ
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from pynetdicom.transport import ThreadedAssociationServer

from ..association import NODELAY_HANDLERS, new_ae, settle
from ..config import validate_ae_title
from ..errors import InvalidInstance
from ..intake import Intake, Peer, Route
from ..server import ListenerLifecycle
from ..spool import file_name_for, sweep_temp_files
from ..transcode import ACCEPTED, UNCOMPRESSED, decompressed, storage_proposal
from ..validate import InstanceInfo
from .index import QueryError, SimIndex, StoredInstance

log = logging.getLogger(__name__)

QR_MODELS = (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
)
CANCELLED = 0xFE00
PENDING = 0xFF00
IDENTIFIER_MISMATCH = 0xA900
UNABLE_TO_PROCESS = 0xC000


def parse_destination(text: str) -> tuple[str, tuple[str, int]]:
    """`AE=host:port` as given on the command line."""
    try:
        ae, _, address = text.partition("=")
        host, _, port = address.rpartition(":")
        return validate_ae_title(ae, what="Move destination AE title"), (host, int(port))
    except ValueError as exc:
        raise ValueError(f"move destination {text!r} must look like AE=host:port") from exc


class AssociationCount:
    """Associations open at the PACS now, and the most ever open at once: what a PACS manager's limit
    on concurrent associations is about, counted where the PACS sees it.

    An association stops counting as soon as its release (or abort) request arrives, before the answer
    goes back: a caller that opens its next association only after the answer is never counted twice."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[Association] = set()
        self.peak = 0
        self.total = 0

    @property
    def now(self) -> int:
        return len(self._open)

    def reset(self) -> None:
        with self._lock:
            self.peak, self.total = len(self._open), 0

    def _established(self, event: evt.Event) -> None:
        with self._lock:
            self._open.add(event.assoc)
            self.total += 1
            self.peak = max(self.peak, len(self._open))

    def _ending(self, event: evt.Event) -> None:
        if event.event is evt.EVT_PDU_RECV and not isinstance(event.pdu, A_RELEASE_RQ | A_ABORT_RQ):
            return
        with self._lock:
            self._open.discard(event.assoc)

    @property
    def handlers(self) -> list[tuple[Any, Any]]:
        return [
            (evt.EVT_ESTABLISHED, self._established),
            (evt.EVT_PDU_RECV, self._ending),
            (evt.EVT_CONN_CLOSE, self._ending),
        ]


class SimulatedPacs(ListenerLifecycle):
    def __init__(
        self,
        ae_title: str,
        port: int,
        storage: Path | str,
        *,
        bind_address: str = "127.0.0.1",
        move_destinations: dict[str, tuple[str, int]] | None = None,
        transfer_syntaxes: Iterable[str] = ACCEPTED,
        require_called_aet: bool = True,
    ) -> None:
        self.ae_title = validate_ae_title(ae_title, what="PACS AE title")
        self.port = int(port)
        self.bind_address = bind_address
        self.storage = Path(storage)
        self.move_destinations = {k.strip(): v for k, v in (move_destinations or {}).items()}
        self.transfer_syntaxes = [str(ts) for ts in transfer_syntaxes]
        self.require_called_aet = require_called_aet
        self.index = SimIndex(self.storage)
        self.intake = Intake(
            incoming_dir=self.storage / ".incoming",
            quarantine_dir=self.storage / "quarantine",
            index=self.index,
            route=self._route,
        )
        self._server: ThreadedAssociationServer | None = None
        self.associations = AssociationCount()

    def _route(self, info: InstanceInfo, peer: Peer) -> Route:
        folder = self.storage / file_name_for(info.study_instance_uid, "") / file_name_for(info.series_instance_uid, "")
        return Route(folder)

    # --- server lifecycle ------------------------------------------------------------------------

    def _build_ae(self) -> AE:
        ae = new_ae(self.ae_title)
        ae.acse_timeout, ae.dimse_timeout, ae.network_timeout = 30, 60, 120
        ae.require_called_aet = self.require_called_aet
        ae.add_supported_context(Verification)
        for model in QR_MODELS:
            ae.add_supported_context(model)
        # scp_role/scu_role: the same contexts serve C-STORE from peers and C-GET sub-operations.
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, self.transfer_syntaxes, scp_role=True, scu_role=False)
        return ae

    def start(self, *, block: bool = False) -> SimulatedPacs:
        """Index the folder and listen; with `block` serve until interrupted."""
        sweep_temp_files(self.storage / ".incoming")
        added = self.index.scan()
        log.info("Simulated PACS %s indexed %d new files in %s", self.ae_title, added, self.storage)
        handlers = [
            *NODELAY_HANDLERS,
            (evt.EVT_C_FIND, self._on_find),
            (evt.EVT_C_GET, self._on_get),
            (evt.EVT_C_MOVE, self._on_move),
            (evt.EVT_C_STORE, self.intake.handle_store),
            *self.associations.handlers,
        ]
        self._server = self._build_ae().start_server((self.bind_address, self.port), block=block, evt_handlers=handlers)
        return self

    # --- C-FIND ----------------------------------------------------------------------------------

    def _on_find(self, event: evt.Event) -> Iterator[tuple[int, Dataset | None]]:
        try:
            identifier = event.identifier
            answers = list(self.index.find(identifier))
        except QueryError as exc:
            log.warning("C-FIND refused: %s", exc)
            yield IDENTIFIER_MISMATCH, None
            return
        except Exception:
            log.exception("C-FIND failed")
            yield UNABLE_TO_PROCESS, None
            return
        for answer in answers:
            if event.is_cancelled:
                yield CANCELLED, None
                return
            yield PENDING, answer

    # --- C-GET and C-MOVE ------------------------------------------------------------------------

    def _matches(self, event: evt.Event) -> list[StoredInstance]:
        # A bad identifier raises out of the handler: pynetdicom then answers with a failure status.
        try:
            return self.index.instances_for(event.identifier)
        except QueryError as exc:
            log.warning("retrieve refused: %s", exc)
            raise

    def _on_get(self, event: evt.Event) -> Iterator[Any]:
        matches = self._matches(event)
        yield len(matches)
        yield from self._send(matches, event, lambda: event.assoc)

    def _on_move(self, event: evt.Event) -> Iterator[Any]:
        destination = self.move_destinations.get(str(event.move_destination).strip())
        if destination is None:
            log.warning("C-MOVE to unknown destination %r", event.move_destination)
            yield None, None
            return
        matches = self._matches(event)
        held: dict[str, Association] = {}

        def on_accepted(ev: evt.Event) -> None:
            held["assoc"] = ev.assoc

        contexts = [
            build_context(abstract, syntaxes)
            for abstract, syntaxes in storage_proposal((m.sop_class_uid, m.transfer_syntax) for m in matches)
        ][:128]
        handlers = [*NODELAY_HANDLERS, (evt.EVT_ACCEPTED, on_accepted)]
        yield destination[0], destination[1], {"contexts": contexts, "evt_handlers": handlers}
        yield len(matches)
        yield from self._send(matches, event, lambda: held.get("assoc"))

    def _send(self, matches: list[StoredInstance], event: evt.Event, assoc: Any) -> Iterator[tuple[int, Any]]:
        for match in matches:
            if event.is_cancelled:
                yield CANCELLED, None
                return
            current = assoc()
            if current is not None and current is not event.assoc:
                settle(current)  # C-MOVE: sub-operations go one after another on our own association
            yield PENDING, self._dataset_for(match, current)

    def _dataset_for(self, match: StoredInstance, assoc: Association | None) -> Dataset:
        """The instance as stored, or decompressed when the peer accepted no context for that."""
        accepted = (
            {(str(cx.abstract_syntax), str(cx.transfer_syntax[0])) for cx in assoc.accepted_contexts}
            if assoc is not None
            else set()
        )
        if (match.sop_class_uid, match.transfer_syntax) in accepted or match.transfer_syntax in UNCOMPRESSED:
            return dcmread(match.path)
        if any((match.sop_class_uid, str(ts)) in accepted for ts in UNCOMPRESSED):
            try:
                return decompressed(match.path)
            except InvalidInstance as exc:
                log.warning("%s cannot be sent uncompressed: %s", match.sop_instance_uid, exc.reason)
        return dcmread(match.path)  # pynetdicom will count it as a failed sub-operation
