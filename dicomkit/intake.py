"""Taking in one C-STORE: raw bytes to disk, checks, de-duplication, quarantine, then Success.

Shared by the standalone receiver (C-MOVE destination, pushes) and by C-GET retrieves, which
receive their instances over the association they opened.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from pydicom.filebase import DicomFileLike
from pydicom.filewriter import write_file_meta_info
from pynetdicom import evt

from . import pixels
from .config import validate_ae_title
from .dedupe import ReceivedIndex, Seen
from .errors import ConfigurationError, InvalidInstance
from .moves import MoveJob
from .quarantine import QuarantineRecord, quarantine_file
from .spool import CHUNK, commit, dataset_sha256, file_name_for, temp_path, write_durably
from .validate import DUPLICATE_CONFLICT, OUT_OF_RESOURCES, InstanceInfo, inspect_file, uid_in

log = logging.getLogger(__name__)

SUCCESS = 0x0000


@dataclass(frozen=True)
class Peer:
    """Who sent an instance, from the association and the C-STORE request."""

    calling_ae: str
    called_ae: str
    address: str
    move_originator_ae: str = ""
    move_originator_message_id: int | None = None


@dataclass(frozen=True)
class Route:
    folder: Path
    job: MoveJob | None = None


@dataclass(frozen=True)
class Arrival:
    """An instance stored durably; what the receiver's `on_arrival` hook is given."""

    path: Path
    sop_instance_uid: str
    sop_class_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    size: int
    sha256: str  # of the data set as received, without the File Meta Information we wrote
    peer: Peer
    received_at: datetime
    job_id: str | None = None
    job_label: str = ""
    duplicate: bool = False
    file_sha256: str = ""  # of the whole file at `path`, when it was hashed while written ("" if not)
    pixel_warning: str = ""  # stored, but the first frame did not decode here (see `pixels`)


ArrivalHook = Callable[[Arrival], None]
QuarantineHook = Callable[[QuarantineRecord], None]
Router = Callable[[InstanceInfo, Peer], Route]


def peer_of(event: evt.Event) -> Peer:
    remote = event.assoc.remote
    local = event.assoc.local
    req = event.request
    msg_id = getattr(req, "MoveOriginatorMessageID", None)
    return Peer(
        calling_ae=str(remote.get("ae_title", "")).strip(),
        called_ae=str(local.get("ae_title", "")).strip(),
        address=f"{remote.get('address', '')}:{remote.get('port', '')}",
        move_originator_ae=str(getattr(req, "MoveOriginatorApplicationEntityTitle", "") or "").strip(),
        move_originator_message_id=int(msg_id) if msg_id else None,
    )


def _received_chunks(event: evt.Event, peer: Peer, dataset_digest: hashlib._Hash) -> Iterator[bytes | memoryview]:
    """Preamble, File Meta Information, then the data set exactly as the peer encoded it (fed to
    `dataset_digest` on the way)."""
    meta = event.file_meta
    try:
        meta.SourceApplicationEntityTitle = validate_ae_title(peer.calling_ae)
    except ConfigurationError:
        pass  # a malformed calling AE is not worth refusing the instance for
    head = io.BytesIO()
    head.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(DicomFileLike(head), meta, enforce_standard=True)
    yield head.getbuffer()
    for chunk in _dataset_chunks(event):
        dataset_digest.update(chunk)
        yield chunk


def _dataset_chunks(event: evt.Event) -> Iterator[bytes | memoryview]:
    """The data set's bytes: from the file pynetdicom wrote as they arrived (STORE_RECV_CHUNKED_DATASET,
    so that no instance is ever held whole in memory), or from memory where a caller turned that off."""
    try:
        streamed = event.dataset_path
    except AttributeError:
        streamed = None
    if streamed is None:
        dataset = event.request.DataSet
        if dataset is not None:
            yield dataset.getbuffer()
        return
    with open(streamed, "rb") as fh:
        fh.seek(_dataset_offset(fh))
        while chunk := fh.read(CHUNK):
            yield chunk


def _dataset_offset(fh: BinaryIO) -> int:
    """Where the data set starts in a file pynetdicom wrote: after its File Meta Information, whose group
    length it always writes. Read from that length, not by walking group 0002, because a data set may
    itself (wrongly) begin with group 0002 elements, which are the sender's bytes to keep."""
    fh.seek(128)
    head = fh.read(16)
    if len(head) < 16 or head[:4] != b"DICM" or head[4:10] != b"\x02\x00\x00\x00UL":
        raise ValueError("pynetdicom's spooled data set has no File Meta Information group length")
    return 144 + int.from_bytes(head[12:16], "little")


class Intake:
    """Handles EVT_C_STORE. Never raises: every outcome is a status and, if bad, a quarantine record."""

    def __init__(
        self,
        *,
        incoming_dir: Path,
        quarantine_dir: Path,
        index: ReceivedIndex,
        route: Router,
        on_arrival: ArrivalHook | None = None,
        on_quarantine: QuarantineHook | None = None,
        durable: bool = True,
        consumed_copies_count: bool = False,
        decode_check: bool = False,
    ) -> None:
        # durable=False skips the fsyncs, for a scratch spool that a crash throws away anyway (a
        # retrieval's, whose caller's ledger, not the file, says what has arrived): ~2 fsyncs per instance.
        self.durable = durable
        # A receiver's kept copy that has gone was moved on or cleared, and a new copy takes its place; a
        # retrieval's caller deletes each copy once passed on, so there a gone copy still counts: a later
        # copy is a repeat or, if it differs, a conflict, never a new arrival.
        self.consumed_copies_count = consumed_copies_count
        # Try to decode the first compressed frame of each new arrival and flag it if that fails (a few ms
        # to tens of ms a frame): for the portal's receiver; a retrieval passes instances on and need not.
        self.decode_check = decode_check
        self.incoming_dir = incoming_dir
        self.quarantine_dir = quarantine_dir
        self.index = index
        self.route = route
        self.on_arrival = on_arrival
        self.on_quarantine = on_quarantine
        self._lock = threading.Lock()

    def handle_store(self, event: evt.Event) -> int:
        temp: Path | None = None
        try:
            peer = peer_of(event)
            temp = temp_path(self.incoming_dir)
            whole, received = hashlib.sha256(), hashlib.sha256()
            size = write_durably(temp, _received_chunks(event, peer, received), sync=self.durable, digest=whole)
            req = event.request
            return self.accept(
                temp,
                size=size,
                peer=peer,
                sha256=received.hexdigest(),
                file_sha256=whole.hexdigest(),
                expected_sop_instance_uid=str(req.AffectedSOPInstanceUID or ""),
                expected_sop_class_uid=str(req.AffectedSOPClassUID or ""),
            )
        except Exception:
            # We could not even keep the bytes (disk full, permissions...): refuse, so the sender
            # keeps its copy and retries; nothing has been acknowledged.
            log.exception("C-STORE could not be written to %s", self.incoming_dir)
            if temp is not None:
                temp.unlink(missing_ok=True)
            return OUT_OF_RESOURCES

    def accept(
        self,
        temp: Path,
        *,
        size: int,
        peer: Peer,
        expected_sop_instance_uid: str = "",
        expected_sop_class_uid: str = "",
        sha256: str = "",
        file_sha256: str = "",
    ) -> int:
        """Decide about a written temp file (fsynced when durable); returns the C-STORE status to answer.

        `sha256` is that of the data set alone (computed from the file when not given); `file_sha256`,
        of the whole temp file if the caller hashed it while writing, travels on to the arrival.
        """
        sha256 = sha256 or dataset_sha256(temp)
        context: dict[str, Any] = {
            "calling_ae": peer.calling_ae,
            "called_ae": peer.called_ae,
            "peer": peer.address,
            "sop_instance_uid": expected_sop_instance_uid.strip("\0 "),
            "sop_class_uid": expected_sop_class_uid.strip("\0 "),
            "move_originator_ae": peer.move_originator_ae,
            "move_originator_message_id": peer.move_originator_message_id,
            "size": size,
            "sha256": sha256,
        }
        try:
            info = inspect_file(
                temp,
                expected_sop_instance_uid=expected_sop_instance_uid,
                expected_sop_class_uid=expected_sop_class_uid,
            )
        except InvalidInstance as bad:
            context["sop_instance_uid"] = context["sop_instance_uid"] or uid_in(temp)
            return self._quarantine(temp, bad.reason, bad.status, context)
        context["transfer_syntax_uid"] = info.transfer_syntax_uid
        context["sop_instance_uid"] = context["sop_instance_uid"] or info.sop_instance_uid
        context["sop_class_uid"] = context["sop_class_uid"] or info.sop_class_uid
        route = self.route(info, peer)
        final = route.folder / file_name_for(info.sop_instance_uid)
        # Before the file is committed: a C-MOVE job's worker may take it from the job folder at once.
        pixel_warning = pixels.decode_problem(temp, info.compressed_frame_bytes) if self.decode_check else None
        with self._lock:
            if route.job is not None:
                # A C-MOVE job's arrival lands in the job's own folder, which its worker empties: repeats
                # and conflicts are judged within the job. The same UID may well come again in a later
                # job, after a trust reconciled its copy (new patient ID, same UIDs).
                seen = self._held_by_job(final)
            else:
                seen = self.index.lookup(info.sop_instance_uid)
                if seen is not None and not self.consumed_copies_count and not Path(seen.path).exists():
                    seen = None  # the copy we kept has gone (moved on, cleared): keep this one instead
            if seen is not None and seen.sha256 != sha256:
                reason = (
                    f"different content under SOP Instance UID {info.sop_instance_uid}, which was already "
                    f"received at {seen.received_at}"
                )
                return self._quarantine(temp, reason, DUPLICATE_CONFLICT, context)
            if seen is not None:
                temp.unlink(missing_ok=True)  # identical bytes already held: a retry, keep one copy
                final = Path(seen.path)
                file_sha256 = ""  # the kept copy's meta may differ from the temp file we hashed
            else:
                commit(temp, final, sync=self.durable)
                if route.job is None:
                    self.index.record(info.sop_instance_uid, sha256, size, final)
        arrival = Arrival(
            path=final,
            sop_instance_uid=info.sop_instance_uid,
            sop_class_uid=info.sop_class_uid,
            study_instance_uid=info.study_instance_uid,
            series_instance_uid=info.series_instance_uid,
            transfer_syntax_uid=info.transfer_syntax_uid,
            size=size,
            sha256=sha256,
            peer=peer,
            received_at=datetime.now(UTC),
            job_id=route.job.job_id if route.job else None,
            job_label=route.job.label if route.job else "",
            duplicate=seen is not None,
            file_sha256=file_sha256,
            pixel_warning=pixel_warning or "",
        )
        if self.on_arrival is not None:
            try:
                self.on_arrival(arrival)
            except Exception:
                # The file is safe on disk but was not recorded: answer "out of resources" so the
                # sender retries; the retry is an identical duplicate and calls the hook again.
                log.exception("on_arrival hook failed for %s", info.sop_instance_uid)
                return OUT_OF_RESOURCES
        return SUCCESS

    @staticmethod
    def _held_by_job(final: Path) -> Seen | None:
        """The instance a job already holds at `final`, as the index would describe it."""
        try:
            digest = dataset_sha256(final)
            received = (
                datetime.fromtimestamp(final.stat().st_mtime, UTC).isoformat().replace("+00:00", "Z")
            )  # as the index
        except FileNotFoundError:
            return None
        return Seen(digest, str(final), received)

    def _quarantine(self, temp: Path, reason: str, status: int, context: dict[str, Any]) -> int:
        record = quarantine_file(temp, self.quarantine_dir, reason=reason, status=status, **context)
        log.warning("Quarantined %s from %s: %s", record.path.name, context.get("calling_ae"), reason)
        if self.on_quarantine is not None:
            try:
                self.on_quarantine(record)
            except Exception:
                log.exception("on_quarantine hook failed for %s", record.path)
        return status
