"""C-GET and C-MOVE retrieves that hand over instances one at a time as they land on disk.

The DIMSE exchange runs in a worker thread; the caller's iterator takes landed files from it, so a
study of any size costs one instance of memory at a time. C-GET is back-pressured: when the
caller falls `max_pending` instances behind, our C-STORE handler waits before acknowledging.
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
import uuid
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset
from pynetdicom import build_role, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)
from pynetdicom.status import code_to_category

from . import sop_classes
from .association import check_status, is_pending, new_ae, open_association, settle
from .dedupe import MemoryIndex
from .errors import ConfigurationError, GatewayError, ProtocolError
from .intake import Arrival, Intake, Route
from .models import RetrievedInstance, RetrieveSummary
from .moves import MoveJob, MoveRegistry
from .queries import instance_identifier
from .retrieval import Retrieval, describe
from .transcode import COMPRESSED, UNCOMPRESSED

if TYPE_CHECKING:
    from .dimse import DimseClient

GET_MODEL = StudyRootQueryRetrieveInformationModelGet
MOVE_MODEL = StudyRootQueryRetrieveInformationModelMove
UIDS_PER_REQUEST = 500  # keeps a UID-list identifier well inside one element's length limit
POLL_SECONDS = 0.05
# After an abort pynetdicom's worker only notices at its DIMSE timeout; don't make the caller wait
# for that. The thread is a daemon and ends by itself; the peer has already been told to stop.
CANCEL_JOIN_SECONDS = 2.0


class _Cancelled(Exception):
    """The caller stopped iterating; refuse further instances."""


def retrieve_identifiers(
    client: DimseClient, study: str, series: str | None, sops: Sequence[str] | None
) -> list[Dataset]:
    """Identifiers for the retrieve; a SOP list is grouped by series as Study Root requires."""
    if not sops:
        ds = Dataset()
        ds.QueryRetrieveLevel = "SERIES" if series else "STUDY"
        ds.StudyInstanceUID = study
        if series:
            ds.SeriesInstanceUID = series
        return [ds]
    by_series: dict[str, list[str]] = {}
    if series:
        by_series[series] = list(sops)
    else:
        wanted = set(sops)
        for ds in client.find([instance_identifier(study)]):
            if str(ds.get("SOPInstanceUID", "")) in wanted:
                by_series.setdefault(str(ds.SeriesInstanceUID), []).append(str(ds.SOPInstanceUID))
    identifiers = []
    for series_uid, uids in by_series.items():
        for start in range(0, len(uids), UIDS_PER_REQUEST):
            ds = Dataset()
            ds.QueryRetrieveLevel = "IMAGE"
            ds.StudyInstanceUID = study
            ds.SeriesInstanceUID = series_uid
            ds.SOPInstanceUID = uids[start : start + UIDS_PER_REQUEST]
            identifiers.append(ds)
    return identifiers


def _record_final(status: Dataset, answer: Dataset | None, summary: RetrieveSummary) -> int:
    code = int(status.Status)
    summary.status = code
    summary.completed += int(status.get("NumberOfCompletedSuboperations", 0) or 0)
    summary.failed += int(status.get("NumberOfFailedSuboperations", 0) or 0)
    summary.warning += int(status.get("NumberOfWarningSuboperations", 0) or 0)
    if answer is not None and "FailedSOPInstanceUIDList" in answer:
        failed = answer.FailedSOPInstanceUIDList
        summary.failed_sop_instance_uids.extend([failed] if isinstance(failed, str) else [str(u) for u in failed])
    return code


def _run_retrieve(client: DimseClient, responses: Any, summary: RetrieveSummary, operation: str) -> None:
    """Consume a send_c_get/send_c_move response generator; raise if nothing could be done."""
    final: tuple[Dataset, Dataset | None] | None = None
    for status, answer in responses:
        if "Status" not in status:
            check_status(status, client.config, operation)  # raises the readable timeout
        if is_pending(int(status.Status)):
            continue
        final = (status, answer)
    if final is None:
        raise ProtocolError(f"{client.config.name} ended {operation} without a final response.")
    code = _record_final(final[0], final[1], summary)
    moved = summary.completed + summary.failed + summary.warning
    if code_to_category(code) == "Failure" and moved == 0:
        if operation == "C-MOVE" and 0xC000 <= code <= 0xCFFF:
            # "Unable to process" with nothing moved: Orthanc and dcmtk answer so when they cannot open an
            # association to the move destination, the portal's own receiver, which may be restarting.
            # Worth trying again (within the retry window), not a verdict on the transfer.
            raise ProtocolError(
                f"{client.config.name} could not send anything to the portal's receiver "
                f"({operation} failure status 0x{code:04X}): is the receiver running and reachable from it?"
            )
        check_status(final[0], client.config, operation)  # nothing moved at all: say why


def _storage_contexts(classes: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Separate contexts per syntax when they fit, so the peer can send each instance as stored."""
    syntaxes = [str(ts) for ts in (*UNCOMPRESSED, *COMPRESSED)]
    if 1 + len(classes) * (1 + len(COMPRESSED)) <= 128:
        contexts = []
        for sop_class in classes:
            contexts.append((sop_class, [str(ts) for ts in UNCOMPRESSED]))
            contexts.extend((sop_class, [str(ts)]) for ts in COMPRESSED)
        return contexts
    return [(sop_class, syntaxes) for sop_class in classes[:127]]


def _classes_to_expect(client: DimseClient, study: str, series: str | None, sops: Sequence[str] | None) -> list[str]:
    """SOP classes of the instances to come (C-GET must propose them); common ones if unknown."""
    try:
        answers = client.find([instance_identifier(study, series)])
    except GatewayError:
        answers = []
    wanted = set(sops or ())
    found = {
        str(ds.SOPClassUID)
        for ds in answers
        if ds.get("SOPClassUID") and (not wanted or str(ds.get("SOPInstanceUID", "")) in wanted)
    }
    return sorted(found) if found else list(sop_classes.COMMON_STORAGE)


def cget(
    client: DimseClient,
    study: str,
    series: str | None,
    sops: Sequence[str] | None,
    spool_dir: Path,
    *,
    max_pending: int = 64,
) -> Retrieval:
    return Retrieval(lambda summary: _cget(client, study, series, sops, spool_dir, max_pending, summary))


def _cget(
    client: DimseClient,
    study: str,
    series: str | None,
    sops: Sequence[str] | None,
    spool_dir: Path,
    max_pending: int,
    summary: RetrieveSummary,
) -> Generator[RetrievedInstance, None, None]:
    spool_dir.mkdir(parents=True, exist_ok=True)
    landed: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max_pending)
    cancel = threading.Event()
    held = _Held()

    def put(kind: str, value: Any) -> None:
        while not cancel.is_set():
            try:
                landed.put((kind, value), timeout=0.25)
                return
            except queue.Full:
                continue
        raise _Cancelled

    def on_arrival(arrival: Arrival) -> None:
        if not arrival.duplicate:  # a repeat of what was already handed over (and perhaps deleted)
            put("item", _as_retrieved(arrival))

    intake = Intake(
        incoming_dir=spool_dir,
        quarantine_dir=spool_dir / "quarantine",
        index=MemoryIndex(),
        route=lambda info, peer: Route(spool_dir),
        on_arrival=on_arrival,
        on_quarantine=summary.quarantined.append,
        durable=False,  # a scratch spool: after a crash the caller retrieves again
        consumed_copies_count=True,
    )

    def run() -> None:
        try:
            identifiers = retrieve_identifiers(client, study, series, sops)
            classes = _classes_to_expect(client, study, series, sops)
            ae = new_ae(client.local_ae_title, client.config)
            ae.add_requested_context(GET_MODEL)
            for abstract, syntaxes in _storage_contexts(classes):
                ae.add_requested_context(abstract, syntaxes)
            roles = [build_role(c, scp_role=True) for c in classes]
            handlers = [(evt.EVT_C_STORE, intake.handle_store)]
            with open_association(ae, client.config, ext_neg=roles, evt_handlers=handlers) as assoc:
                held.take(assoc)
                try:
                    for identifier in identifiers:
                        responses = assoc.send_c_get(identifier, GET_MODEL)
                        _run_retrieve(client, responses, summary, "C-GET")
                        settle(assoc)
                finally:
                    held.let_go()  # before the release or abort on the way out
            put("done", None)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, which re-raises it
            try:
                put("error", exc)
            except _Cancelled:
                pass

    yield from _drain(run, landed, cancel, held)


def _drain(
    run: Any,
    landed: queue.Queue[tuple[str, Any]],
    cancel: threading.Event,
    held: _Held,
) -> Generator[RetrievedInstance, None, None]:
    worker = threading.Thread(target=run, name="dicom-retrieve", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = landed.get()
            if kind == "item":
                yield value
            elif kind == "done":
                return
            else:
                raise value
    finally:
        cancel.set()
        _stop(worker, held, GET_MODEL, 1)


class _Held:
    """The worker's association, for a caller that walks away to cancel on.

    The worker lets go before it releases (or aborts) the association: a C-CANCEL sent once the release
    has begun is a protocol error that pynetdicom raises in its reactor thread, so the two are
    serialised here."""

    def __init__(self) -> None:
        self.assoc: Association | None = None
        self.lock = threading.Lock()

    def take(self, assoc: Association) -> None:
        with self.lock:
            self.assoc = assoc

    def let_go(self) -> None:
        with self.lock:
            self.assoc = None

    def cancel(self, msg_id: int, model: str) -> Association | None:
        """Send C-CANCEL if the worker still holds an open association; that association, if any."""
        with self.lock:
            assoc = self.assoc
            if assoc is not None and assoc.is_established:
                try:
                    assoc.send_c_cancel(msg_id, query_model=model)
                except Exception:  # noqa: BLE001, S110 - best effort; the abort in _stop still ends it
                    pass
            return assoc


def _stop(worker: threading.Thread, held: _Held, model: str, msg_id: int) -> None:
    """End a retrieve the caller walked away from: C-CANCEL first, abort if the peer ignores it."""
    if not worker.is_alive():
        worker.join(timeout=CANCEL_JOIN_SECONDS)
        return
    assoc = held.cancel(msg_id, model)
    if assoc is None:
        worker.join(timeout=CANCEL_JOIN_SECONDS)
        return
    worker.join(timeout=CANCEL_JOIN_SECONDS / 2)
    if worker.is_alive() and assoc.is_established:
        assoc.abort()
    worker.join(timeout=CANCEL_JOIN_SECONDS)


def _as_retrieved(arrival: Arrival) -> RetrievedInstance:
    return RetrievedInstance(
        path=arrival.path,
        sop_instance_uid=arrival.sop_instance_uid,
        sop_class_uid=arrival.sop_class_uid,
        study_instance_uid=arrival.study_instance_uid,
        series_instance_uid=arrival.series_instance_uid,
        transfer_syntax_uid=arrival.transfer_syntax_uid,
        size=arrival.size,
        sha256=arrival.file_sha256,
    )


def cmove(
    client: DimseClient,
    study: str,
    series: str | None,
    sops: Sequence[str] | None,
    spool_dir: Path,
    *,
    label: str = "",
) -> Retrieval:
    if client.move_destination is None:
        raise ConfigurationError(
            f"{client.config.name} retrieves by C-MOVE, which needs the portal's receiver: "
            "give client_for() a move_destination."
        )
    return Retrieval(lambda summary: _cmove(client, study, series, sops, spool_dir, label, summary))


def _cmove(
    client: DimseClient,
    study: str,
    series: str | None,
    sops: Sequence[str] | None,
    spool_dir: Path,
    label: str,
    summary: RetrieveSummary,
) -> Generator[RetrievedInstance, None, None]:
    destination = client.move_destination
    assert destination is not None  # noqa: S101 - checked by cmove()
    spool_dir.mkdir(parents=True, exist_ok=True)
    # The receiver drops this job's files into a fresh landing folder; we move each one up into
    # the caller's spool as we hand it over, so every arrival is seen exactly once.
    landing = spool_dir / f".landing-{uuid.uuid4().hex}"
    registry = MoveRegistry(destination.jobs_dir)
    job = registry.register(
        MoveJob(
            spool_dir=landing,
            study_instance_uid=study,
            series_instance_uid=series or "",
            sop_instance_uids=tuple(sops or ()),
            originator_ae=client.local_ae_title,
            label=label,
        )
    )
    done = threading.Event()
    failures: list[BaseException] = []
    held = _Held()

    def run() -> None:
        try:
            identifiers = retrieve_identifiers(client, study, series, sops)
            ae = new_ae(client.local_ae_title, client.config)
            ae.add_requested_context(MOVE_MODEL)
            with open_association(ae, client.config) as assoc:
                held.take(assoc)
                try:
                    for identifier in identifiers:
                        responses = assoc.send_c_move(
                            identifier, destination.ae_title, MOVE_MODEL, msg_id=job.message_id
                        )
                        _run_retrieve(client, responses, summary, "C-MOVE")
                        settle(assoc)
                finally:
                    held.let_go()  # before the release or abort on the way out
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            failures.append(exc)
        finally:
            done.set()

    worker = threading.Thread(target=run, name="dicom-move", daemon=True)
    worker.start()
    delivered = 0
    try:
        while True:
            finished = done.is_set()  # read before the scan so the last scan follows the end
            for name in sorted(_landed(landing)):
                final = spool_dir / name
                os.replace(landing / name, final)
                delivered += 1
                yield describe(final)
            if finished:
                break
            done.wait(POLL_SECONDS)
        if failures:
            raise failures[0]
        # The receiver acknowledges only after the file is in place, and the final C-MOVE response
        # follows the last acknowledgement: anything missing now went somewhere else.
        summary.not_delivered = max(0, summary.completed + summary.warning - delivered)
    finally:
        _stop(worker, held, MOVE_MODEL, job.message_id)
        registry.remove(job)
        shutil.rmtree(landing, ignore_errors=True)


def _landed(folder: Path) -> list[str]:
    try:
        return [e.name for e in os.scandir(folder) if e.name.endswith(".dcm") and not e.name.startswith(".")]
    except FileNotFoundError:
        return []
