"""The transfer engine: source gateway → bounded spool → destination gateway, instance by instance.

One worker owns a transfer at a time (a lease renewed by heartbeats). Retrieval runs in its own thread
and hands instances through a bounded queue to this thread, which records each batch in the ledger
under row locks (retrieved, with its size and SHA-256), sends it to the destination from a small pool
of store streams (settings.TRANSFER_STORE_STREAMS, one gateway slot each), and records each instance's
outcome when its batch comes back. Meanwhile one helper thread lists the study in the source's index
(the ledger's total) and another looks up what has been stored in the destination's index (the
verification, done by the end but for the last batch). Only this thread touches the database. What the
ledger marks stored is never sent again, so a rerun after a crash, a retry or a second delivery of the
task resumes where the last one stopped.

Delivery to the destination is at least once on the wire for the batches in flight when a worker
dies (it is sent again on resume); a PACS keys instances by SOP Instance UID, so each arrives once.
"""

from __future__ import annotations

import errno
import queue
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from django.conf import settings
from django.db import connections, router, transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.context import system_actor
from dicomkit import GatewayClient, GatewayError, Instance, RetrievedInstance, StoreResult, Study, StudyQuery
from dicomkit.spool import sha256_of
from dicomkit.validate import is_uid
from directory.gateways import gateway_client
from directory.models import Gateway
from directory.services import agreement_allows
from exchange import services as exchange_services
from exchange.models import QuarantinedInstance

from . import completion, slots, stages
from .models import FINISHED, InstanceState, Status, Transfer, TransferInstance

# Instances per C-STORE association / STOW-RS request, and per ledger write: fewer, larger batches cost
# this thread fewer database round trips (32 measured faster than 16 and 64 on the throughput benchmark).
BATCH_SIZE = 32
# While instances flow, the lease is renewed at most this often (each renewal is two commits); in
# between, a read per batch still notices a cancellation at once.
BEAT_SECONDS = 1.0
QUEUE_SIZE = 32  # instances retrieved and waiting to be stored: with the retriever's own, the spool's bound
MAX_INSTANCE_ATTEMPTS = 3  # passes an instance gets before a transient refusal counts as failure
ACTOR = system_actor("transfer worker")
log = structlog.get_logger(__name__)


class Busy(Exception):
    """Another worker holds a fresh lease on this transfer."""


class NoSlot(Exception):
    """The source or destination gateway is at its max_concurrency: wait, this is not a failure."""


class Stopped(Exception):
    """The transfer was cancelled, or our lease passed to another worker."""


class _StoppedAtRefusal(Exception):
    """The source ended a retrieve with a failure after we refused an instance it sent (Orthanc stops a
    C-MOVE at the first refused sub-operation): that instance is failed; ask again for the rest."""


class AgreementWithdrawn(GatewayError):
    """The sharing agreement no longer lets the source send to the destination: no more images go."""

    def __init__(self, transfer: Transfer) -> None:
        super().__init__(
            f"The sharing agreement between {transfer.source.ods_code} and {transfer.destination.ods_code} no "
            "longer allows this transfer; nothing more was sent.",
            permanent=True,
        )


def _check_agreement(transfer: Transfer) -> None:
    """Checked before each pass and while instances flow: a withdrawn agreement stops the sending."""
    if not agreement_allows(transfer.source, transfer.destination):
        raise AgreementWithdrawn(transfer)


class TransientTransferError(GatewayError):
    """Something may work later (instances not delivered yet, refusals a PACS may lift)."""


def spool_dir(transfer_id: int, *, shared: bool = False) -> Path:
    """Where this pass keeps the transfer's instances between retrieving and storing them: the scratch
    folder (TRANSFER_SCRATCH_DIR, RAM-backed where deployed so) while it has room, else the disk spool.
    `shared`: the DICOM receiver must write there too (C-MOVE lands in it), so only SPOOL_DIR will do:
    a worker's scratch tmpfs is its own."""
    if shared or not settings.TRANSFER_SCRATCH_DIR:
        return _disk_spool(transfer_id)
    scratch = Path(settings.TRANSFER_SCRATCH_DIR)
    try:
        scratch.mkdir(parents=True, exist_ok=True)
        room = shutil.disk_usage(scratch).free
    except OSError:
        room = 0
    if room >= settings.TRANSFER_SCRATCH_RESERVE:
        return scratch / str(transfer_id)
    log.warning("transfer_scratch_full", scratch=str(scratch), free_bytes=room)
    return _disk_spool(transfer_id)


def _disk_spool(transfer_id: int) -> Path:
    return Path(settings.SPOOL_DIR) / "transfers" / str(transfer_id)


def _every_spool(transfer_id: int) -> set[Path]:
    """Every folder a pass of the transfer may have used on this host (for a dead pass's leftovers)."""
    folders = {_disk_spool(transfer_id)}
    if settings.TRANSFER_SCRATCH_DIR:
        folders.add(Path(settings.TRANSFER_SCRATCH_DIR) / str(transfer_id))
    return folders


_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)


def heartbeat_interval() -> float:
    return max(1.0, settings.TRANSFER_LEASE_SECONDS / 6)


# --- the lease ------------------------------------------------------------------------------------


def claim(transfer_id: int, owner: str) -> Transfer | None:
    """Take the transfer for this worker; None when it has already ended (nothing to do)."""
    with transaction.atomic():
        transfer = Transfer.objects.select_for_update().get(pk=transfer_id)
        if transfer.status in FINISHED:
            return None
        now = timezone.now()
        fresh = transfer.heartbeat_at and now - transfer.heartbeat_at < timedelta(
            seconds=settings.TRANSFER_LEASE_SECONDS
        )
        if transfer.lease_owner and transfer.lease_owner != owner and fresh:
            raise Busy(transfer.lease_owner)
        _check_agreement(transfer)
        transfer.lease_owner = owner
        transfer.heartbeat_at = now
        transfer.attempts += 1
        transfer.started_at = transfer.started_at or now
        if transfer.status == Status.QUEUED:
            transfer.status = Status.RETRIEVING
        transfer.save(update_fields=["lease_owner", "heartbeat_at", "attempts", "started_at", "status"])
        return transfer


def _beat(transfer: Transfer, owner: str, status: str | None = None) -> None:
    """Renew the lease; stop if the transfer was cancelled or another worker took it over."""
    values: dict[str, Any] = {"heartbeat_at": timezone.now()}
    if status:
        values["status"] = status
    live = Transfer.objects.filter(pk=transfer.pk, lease_owner=owner).exclude(status__in=FINISHED)
    if not live.update(**values):
        raise Stopped
    slots.renew(owner)
    if status:
        transfer.status = status


class _Heartbeat:
    """`_beat` for the loops that move instances, called per batch: it writes every BEAT_SECONDS and
    otherwise only reads whether the transfer is still ours and running (raising Stopped if not)."""

    def __init__(self, transfer: Transfer, owner: str) -> None:
        self.transfer, self.owner = transfer, owner
        self.last = float("-inf")

    def __call__(self) -> None:
        now = time.monotonic()
        if now - self.last >= BEAT_SECONDS:
            _beat(self.transfer, self.owner)
            _check_agreement(self.transfer)
            self.last = now
            return
        live = Transfer.objects.filter(pk=self.transfer.pk, lease_owner=self.owner).exclude(status__in=FINISHED)
        if not live.exists():
            raise Stopped


def release(transfer_id: int, owner: str) -> None:
    Transfer.objects.filter(pk=transfer_id, lease_owner=owner).update(lease_owner="")


# --- the run --------------------------------------------------------------------------------------


@dataclass
class Clients:
    source: GatewayClient
    destination: GatewayClient


def clients_for(transfer: Transfer) -> Clients:
    return Clients(gateway_client(transfer.source_gateway), gateway_client(transfer.destination_gateway))


def run(transfer_id: int, *, owner: str, clients: Clients | None = None) -> str:
    """One pass over a transfer, holding a slot on each of its gateways (their max_concurrency, across
    all workers). Raises NoSlot when either gateway is at its limit: the task asks again shortly."""
    if not slots.acquire_for_transfer(transfer_id, owner):
        raise NoSlot(transfer_id)
    try:
        return _run(transfer_id, owner=owner, clients=clients)
    finally:
        slots.release(owner)


def _run(transfer_id: int, *, owner: str, clients: Clients | None = None) -> str:
    """One pass over a transfer. Returns its status; raises GatewayError (see `.permanent`) or Busy."""
    transfer = claim(transfer_id, owner)
    if transfer is None:
        return "already finished"
    folder = spool_dir(transfer_id, shared=transfer.source_gateway.retrieve_method == Gateway.RetrieveMethod.C_MOVE)
    for leftovers in _every_spool(transfer_id):  # of a dead worker's pass: retrieved again
        shutil.rmtree(leftovers, ignore_errors=True)
    planner: _Planner | None = None
    verifier: _Verifier | None = None
    try:
        clients = clients or clients_for(transfer)
        # The source's index is listed while the study already flows (instances it does not list are
        # added as they arrive), and what has been stored is looked up at the destination while later
        # batches are still on their way: neither query then adds its time to the transfer's.
        planner = _Planner(transfer, clients.source)
        verifier = _Verifier(clients.destination)
        streams = 1 + slots.acquire_extra(
            transfer.destination_gateway_id, owner, settings.TRANSFER_STORE_STREAMS - 1, transfer_id=transfer.pk
        )  # released with the transfer's own slots by run()
        for study_uid in transfer.study_instance_uids:
            try:
                while True:
                    try:
                        _move_study(transfer, owner, clients, study_uid, folder, streams, verifier, planner)
                        break
                    except _StoppedAtRefusal:
                        continue  # each time one more instance is failed: this ends
            except OSError as exc:  # the worker's own disk, not a gateway: the next pass may find room
                if exc.filename is None and exc.errno not in _DISK_ERRORS:
                    raise  # a socket's error (requests' are OSErrors too): not the spool's
                full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
                what = "has no space left" if full else f"could not be written ({exc.strerror or exc})"
                raise TransientTransferError(f"The worker's spool folder {folder} {what}; trying again.") from exc
        with _keepalive(transfer, owner):  # a C-FIND over a big study can outlast the lease
            planner.record()
        _give_up_or_retry_undelivered(transfer)
        _beat(transfer, owner, Status.VERIFYING)
        with _keepalive(transfer, owner):
            _verify(transfer, clients.destination, verifier.finish())
        if stages.holds_back(transfer, owner):
            return Status.AWAITING_RECONCILIATION
        return _finish(transfer, owner)
    except Stopped:
        completion.record_stopped(transfer_id, owner)
        return "stopped"
    finally:
        for helper in (planner, verifier):
            if helper is not None:  # nothing of this run may talk to a gateway once its slots are released
                helper.close()
        shutil.rmtree(folder, ignore_errors=True)
        release(transfer_id, owner)


class _Planner:
    """Lists each study's instances in the source's own index, so progress has its total and an instance
    the source lists but does not deliver is noticed. The queries run in a thread while the first study
    already moves; `record()`, in the calling thread (the one that uses the database), writes the ledger
    rows (the instances already moving have theirs) and raises what a query raised."""

    def __init__(self, transfer: Transfer, source: GatewayClient) -> None:
        self.transfer, self.source = transfer, source
        self.studies = [uid for uid in transfer.study_instance_uids if uid not in transfer.listed_studies]
        self.need_patient = not transfer.patient_id and not transfer.nhs_number
        self.found: dict[str, list[Instance]] = {}
        self.patient: Study | None = None
        self.error: BaseException | None = None
        self.recorded = False
        self.thread = threading.Thread(target=self._query, name="transfer-plan", daemon=True)
        self.thread.start()

    def _query(self) -> None:
        try:
            for study_uid in self.transfer.study_instance_uids:
                if self.need_patient and self.patient is None:
                    studies = self.source.find_studies(StudyQuery(study_instance_uid=study_uid, limit=1))
                    self.patient = studies[0] if studies else None
                if study_uid in self.studies:
                    self.found[study_uid] = self.source.find_instances(study_uid)
        except BaseException as exc:  # noqa: BLE001 - raised by record(), in the thread that runs the transfer
            self.error = exc

    def record_if_ready(self) -> None:
        if not self.recorded and not self.thread.is_alive():
            self.record()

    def record(self) -> None:
        if self.recorded:
            return
        self.thread.join()
        self.recorded = True
        if self.error is not None:
            raise self.error
        transfer = self.transfer
        if self.patient is not None:
            transfer.patient_id = self.patient.patient_id[:64]
            transfer.nhs_number = self.patient.nhs_number if len(self.patient.nhs_number) == 10 else ""
            transfer.save(update_fields=["patient_id", "nhs_number"])
        listed = [uid for uid, found in self.found.items() if found]
        for study_uid, found in self.found.items():
            if not found:  # not marked listed: asked again next pass, in case it was still arriving
                error = f"{self.source.config.name} holds no instances of this study."
                _add_error(transfer, study_uid=study_uid, error=error)
                continue
            TransferInstance.objects.bulk_create(
                [
                    TransferInstance(
                        transfer=transfer,
                        sop_instance_uid=i.sop_instance_uid,
                        study_instance_uid=study_uid,
                        series_instance_uid=i.series_instance_uid,
                    )
                    for i in found
                ],
                ignore_conflicts=True,
            )
        if listed:  # after the rows: a pass that dies in between lists the study again
            transfer.listed_studies = [*transfer.listed_studies, *listed]
            transfer.save(update_fields=["listed_studies"])

    def lists(self, study_uid: str) -> bool:
        """Whether this pass lists the study (its ledger rows, if any, may be only the first batches')."""
        return study_uid in self.studies and not self.recorded

    def holds_nothing_of(self, study_uid: str) -> bool:
        """Whether the source's index listed no instance of the study (recording the plan first)."""
        try:
            self.record()
        except GatewayError:
            return False
        return self.found.get(study_uid) == []

    def close(self) -> None:
        self.thread.join()


def _add_error(transfer: Transfer, **entry: str) -> None:
    with transaction.atomic():
        locked = Transfer.objects.select_for_update().get(pk=transfer.pk)
        if entry not in locked.errors:
            locked.errors = [*locked.errors, entry]
            locked.save(update_fields=["errors"])
        transfer.errors = locked.errors


def _move_study(
    transfer: Transfer,
    owner: str,
    clients: Clients,
    study_uid: str,
    folder: Path,
    streams: int = 1,
    verifier: _Verifier | None = None,
    planner: _Planner | None = None,
) -> None:
    rows = transfer.instances.filter(study_instance_uid=study_uid)
    if planner is not None and planner.lists(study_uid) and rows.exists():
        # A pass died before the source's listing was recorded: the rows cover only what it reached, so
        # know the whole study before choosing what to ask the source for.
        with _keepalive(transfer, owner):
            planner.record()
    states = list(rows.values_list("state", flat=True))
    todo = list(
        rows.filter(state__in=(InstanceState.PENDING, InstanceState.RETRIEVED)).values_list(
            "sop_instance_uid", flat=True
        )
    )
    if states and not todo:
        return
    # Ask for the whole study when nothing of it has moved yet (one request); else only what is left.
    sop_uids = None if len(todo) == len(states) else todo
    since = timezone.now() - timedelta(seconds=60)  # C-MOVE refusals are dated by the receiver's clock
    retrieval = clients.source.retrieve(study_uid, sop_uids=sop_uids, spool_dir=folder / "in", label=str(transfer.pk))
    pipe = _Pipe(retrieval)
    pipe.start()
    beat = _Heartbeat(transfer, owner)
    stores = _Stores(transfer, owner, clients.destination, streams, beat, verifier)
    try:
        while True:
            stores.wait_for_room()
            batch, done = pipe.take(BATCH_SIZE, timeout=heartbeat_interval())
            batch = _only_of_study(transfer, clients.source, study_uid, batch)
            beat()
            if planner is not None:
                planner.record_if_ready()
            if batch:
                stores.send(batch)
            stores.collect()
            if done:
                break
        stores.finish()
    except GatewayError as exc:
        if planner is not None and planner.holds_nothing_of(study_uid):
            return  # the study is not at the source: the plan's error says so, better than the retrieval's
        if _refusals(transfer, owner, planner, study_uid, retrieval.summary, since):
            raise _StoppedAtRefusal from exc
        raise
    finally:
        stores.close()
        pipe.stop()
    _refusals(transfer, owner, planner, study_uid, retrieval.summary, since)


def _refusals(
    transfer: Transfer, owner: str, planner: _Planner | None, study_uid: str, summary: Any, since: datetime
) -> int:
    """`_record_refused`, once the plan's ledger rows are written: refusals are matched to rows, and a
    damaged instance the plan listed only later would look merely not delivered yet (asked for again).
    Only when something may have been refused: the retrieval's own quarantine says so, except with
    C-MOVE, where the receiver refuses arrivals and keeps them in its own."""
    is_move = transfer.source_gateway.retrieve_method == Gateway.RetrieveMethod.C_MOVE
    if planner is not None and planner.lists(study_uid) and (is_move or getattr(summary, "quarantined", None)):
        with _keepalive(transfer, owner):
            planner.record()
    return _record_refused(transfer, study_uid, summary, since)


def _only_of_study(
    transfer: Transfer, source: GatewayClient, study_uid: str, batch: list[RetrievedInstance]
) -> list[RetrievedInstance]:
    """What the source sent of the study asked for. Anything else (a PACS whose index and files disagree)
    is another patient's, perhaps: never passed on, and the transfer says so."""
    strays = [item for item in batch if item.study_instance_uid != study_uid]
    if not strays:
        return batch
    _discard(strays)
    for other in sorted({item.study_instance_uid for item in strays}):
        _add_error(
            transfer,
            study_uid=study_uid,
            error=f"{source.config.name} answered with instances of another study ({other or 'no Study UID'}); "
            "they were not passed on.",
        )
    return [item for item in batch if item.study_instance_uid == study_uid]


def _record_refused(transfer: Transfer, study_uid: str, summary: Any, since: datetime) -> int:
    """Instances our receiving side refused (truncated, unparseable, inconsistent: dicomkit.validate)
    are failed now with the validator's reason: the source's copy is damaged, so another pass would not
    help, and a damaged image is never passed on to the destination or reported as sent. A refused
    second copy that differs from one already passed on (a source with two objects under one UID) cannot
    fail that instance: the transfer's errors say so. The refused bytes join the receiver's quarantine
    (C-MOVE arrivals are already there, kept by the receiver since `since`). Returns how many instances
    it failed."""
    source = transfer.source_gateway
    reasons: dict[str, str] = {}
    for record in getattr(summary, "quarantined", None) or ():
        try:
            kept = exchange_services.keep_refused_retrieval(record, source, actor=ACTOR)
        except OSError:
            log.exception("refused_instance_not_kept", transfer_id=transfer.pk, path=str(record.path))
            kept = record
        reasons.setdefault(kept.sop_instance_uid, kept.reason)
    reasons.pop("", None)  # nothing to match a ledger row by: the source did not deliver it, in the end
    if source.retrieve_method == Gateway.RetrieveMethod.C_MOVE:
        waiting = transfer.instances.filter(study_instance_uid=study_uid).exclude(
            state__in=(InstanceState.STORED, InstanceState.FAILED)
        )
        refused = QuarantinedInstance.objects.filter(
            received_at__gte=since,
            calling_ae=source.ae_title,
            sop_instance_uid__in=waiting.values("sop_instance_uid"),
        ).order_by("received_at")
        for uid, reason in refused.values_list("sop_instance_uid", "reason"):
            reasons.setdefault(uid, reason)
    if not reasons:
        return 0
    with transaction.atomic():
        rows = list(transfer.instances.select_for_update().filter(sop_instance_uid__in=reasons))
        for row in rows:
            if row.state == InstanceState.STORED:
                _add_error(
                    transfer,
                    study_uid=study_uid,
                    error=f"{source.name} sent a second, different copy of instance {row.sop_instance_uid}: the "
                    f"first was sent on, the second kept in quarantine ({reasons[row.sop_instance_uid]}).",
                )
        failed = [row for row in rows if row.state not in (InstanceState.STORED, InstanceState.FAILED)]
        for row in failed:
            row.state = InstanceState.FAILED
            row.last_error = f"refused on arrival from the source, not sent: {reasons[row.sop_instance_uid]}"
        TransferInstance.objects.bulk_update(failed, ["state", "last_error", "updated_at"])
    return len(failed)


class _Pipe:
    """The retrieval generator, iterated in its own thread, feeding a bounded queue."""

    def __init__(self, retrieval: Any) -> None:
        self.retrieval = retrieval
        self.queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=QUEUE_SIZE)
        self.halt = threading.Event()
        self.summary: Any = None  # the retrieval's RetrieveSummary, once it has ended
        self.thread = threading.Thread(target=self._pump, name="transfer-retrieve", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _put(self, kind: str, value: Any) -> bool:
        while not self.halt.is_set():
            try:
                self.queue.put((kind, value), timeout=0.25)
                return True
            except queue.Full:
                continue
        return False

    def _pump(self) -> None:
        try:
            for item in self.retrieval:
                if not self._put("item", item):
                    return
            self._put("done", self.retrieval.summary)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the storing thread
            self._put("error", exc)
        finally:
            self.retrieval.close()

    def take(self, size: int, timeout: float) -> tuple[list[RetrievedInstance], bool]:
        """Up to `size` instances; waits at most `timeout` for the first. True once retrieval ended."""
        batch: list[RetrievedInstance] = []
        try:
            kind, value = self.queue.get(timeout=timeout)
        except queue.Empty:
            return batch, False
        while True:
            if kind == "error":
                _discard(batch)
                raise value
            if kind == "done":
                self.summary = value
                return batch, True
            batch.append(value)
            if len(batch) >= size:
                return batch, False
            try:
                kind, value = self.queue.get_nowait()
            except queue.Empty:
                return batch, False

    def stop(self) -> None:
        self.halt.set()
        while True:  # unblock the pump and delete what it had spooled
            try:
                kind, value = self.queue.get_nowait()
            except queue.Empty:
                break
            if kind == "item":
                _discard([value])
        self.thread.join(timeout=30)


def _discard(items: list[RetrievedInstance]) -> None:
    for item in items:
        item.path.unlink(missing_ok=True)


_InFlight = tuple[Future[list[StoreResult]], list[RetrievedInstance], list[RetrievedInstance]]


class _Stores:
    """Batches on their way to the destination: sent from a pool of `streams` threads, recorded in the
    ledger by the calling thread (the only one that uses the database) as they come back."""

    def __init__(
        self,
        transfer: Transfer,
        owner: str,
        destination: GatewayClient,
        streams: int,
        beat: _Heartbeat,
        verifier: _Verifier | None = None,
    ) -> None:
        self.transfer, self.owner, self.destination, self.beat = transfer, owner, destination, beat
        self.verifier = verifier
        self.streams = max(1, streams)
        self.pool = ThreadPoolExecutor(max_workers=self.streams, thread_name_prefix="transfer-store")
        self.in_flight: list[_InFlight] = []

    def send(self, batch: list[RetrievedInstance]) -> None:
        """Ledger to `retrieved`, reconciliation, then off to a store stream (the files are deleted once
        it has come back)."""
        try:
            to_send = _mark_retrieved(self.transfer, batch)
            to_send = stages.prepare_batch(self.transfer, self.destination, to_send)  # reconciliation
            if to_send and self.transfer.status != Status.SENDING:
                _beat(self.transfer, self.owner, Status.SENDING)
        except BaseException:
            _discard(batch)
            raise
        if not to_send:
            _discard(batch)
            return
        future = self.pool.submit(self.destination.store, [item.path for item in to_send])
        self.in_flight.append((future, batch, to_send))

    def wait_for_room(self) -> None:
        """Block (beating) while every stream is busy."""
        while len(self.in_flight) >= self.streams:
            wait([f for f, _, _ in self.in_flight], timeout=heartbeat_interval(), return_when=FIRST_COMPLETED)
            self.beat()
            self.collect()

    def collect(self) -> None:
        """Record the batches that have come back; a stream's GatewayError is raised here."""
        for entry in [e for e in self.in_flight if e[0].done()]:
            self.in_flight.remove(entry)
            future, batch, sent = entry
            try:
                stored = _mark_stored(self.transfer, sent, future.result())
            finally:
                _discard(batch)
            if self.verifier is not None:
                self.verifier.check(stored)

    def finish(self) -> None:
        while self.in_flight:
            wait([f for f, _, _ in self.in_flight], timeout=heartbeat_interval(), return_when=FIRST_COMPLETED)
            self.beat()
            self.collect()

    def close(self) -> None:
        """After an error: let the batches on the wire end (nothing may still be sending once the slots
        are released), record what they stored, and delete their files."""
        for future, batch, sent in self.in_flight:
            try:
                _mark_stored(self.transfer, sent, future.result())
            except Exception:  # the first error is already on its way up; these are sent again on resume
                log.warning("store_batch_not_recorded", transfer_id=self.transfer.pk, exc_info=True)
            finally:
                _discard(batch)
        self.in_flight.clear()
        self.pool.shutdown(wait=True)


def _update_each(rows: list[TransferInstance], fields: list[str]) -> None:
    """Write `fields` (and updated_at) of each row with one UPDATE run for every row (executemany).
    The ORM's bulk_update builds a CASE per field and row: profiled, it cost more of the engine's time
    than sending the images."""
    if not rows:
        return
    now = timezone.now()
    meta = TransferInstance._meta
    columns = [meta.get_field(name) for name in [*fields, "updated_at"]]
    connection = connections[router.db_for_write(TransferInstance)]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in columns)
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"  # noqa: S608 - names from the model
    params = []
    for row in rows:
        row.updated_at = now
        params.append([f.get_db_prep_save(getattr(row, f.attname), connection) for f in columns] + [row.pk])
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _mark_retrieved(transfer: Transfer, batch: list[RetrievedInstance]) -> list[RetrievedInstance]:
    """Ledger rows to `retrieved` (size, checksum); returns what still needs sending.

    One statement, an upsert: rows the plan wrote are updated unless stored or failed already; rows it
    did not (the source holds more than its index answered, or the plan is still being listed) are
    added. Every round trip of this thread to the database costs the other threads' time as well."""
    by_uid = {item.sop_instance_uid: item for item in batch}
    if not by_uid:
        return []
    meta = TransferInstance._meta
    connection = connections[router.db_for_write(TransferInstance)]
    quote = connection.ops.quote_name
    fields = [
        meta.get_field(name)
        for name in (
            "transfer",
            "sop_instance_uid",
            "study_instance_uid",
            "series_instance_uid",
            "state",
            "size",
            "sha256",
            "attempts",
            "last_error",
            "updated_at",
        )
    ]
    now = timezone.now()
    params: list[Any] = []
    for uid, item in by_uid.items():
        # The retrieval hashed most files as it wrote them; read back only the others.
        values = [transfer.pk, uid, item.study_instance_uid, item.series_instance_uid, InstanceState.RETRIEVED]
        values += [item.size, item.sha256 or sha256_of(item.path), 0, "", now]
        params += [field.get_db_prep_save(value, connection) for field, value in zip(fields, values, strict=True)]
    table, columns = quote(meta.db_table), [quote(field.column) for field in fields]
    state, sop = quote("state"), quote("sop_instance_uid")
    assignments = ", ".join(
        f"{quote(name)} = EXCLUDED.{quote(name)}" for name in ("state", "size", "sha256", "updated_at")
    )
    rows = ", ".join(["(" + ", ".join(["%s"] * len(fields)) + ")"] * len(by_uid))
    insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {rows}"  # noqa: S608 - names from the model
    conflict = f"ON CONFLICT ({quote('transfer_id')}, {sop}) DO UPDATE SET {assignments}"
    sql = f"{insert} {conflict} WHERE {table}.{state} NOT IN (%s, %s) RETURNING {sop}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, InstanceState.STORED, InstanceState.FAILED])
        to_send = {uid for (uid,) in cursor.fetchall()}
    return [item for uid, item in by_uid.items() if uid in to_send]


def _mark_stored(transfer: Transfer, sent: list[RetrievedInstance], results: list) -> dict[str, list[str]]:
    """Record a batch's outcome; returns the instances stored, by study."""
    outcome = {r.sop_instance_uid or item.sop_instance_uid: r for item, r in zip(sent, results, strict=True)}
    study_of = {item.sop_instance_uid: item.study_instance_uid for item in sent}
    stored: dict[str, list[str]] = {}
    if all(result.ok for result in outcome.values()):  # the usual case: one statement
        stored_uids = transfer.instances.filter(sop_instance_uid__in=outcome).update(
            state=InstanceState.STORED, last_error="", attempts=F("attempts") + 1, updated_at=timezone.now()
        )
        if stored_uids == len(outcome):
            for uid in outcome:
                stored.setdefault(study_of.get(uid, ""), []).append(uid)
            return stored
    with transaction.atomic():
        rows = list(transfer.instances.select_for_update().filter(sop_instance_uid__in=outcome))
        for row in rows:
            result = outcome[row.sop_instance_uid]
            row.attempts += 1
            if result.ok:
                row.state, row.last_error = InstanceState.STORED, ""
                stored.setdefault(study_of.get(row.sop_instance_uid, row.study_instance_uid), []).append(
                    row.sop_instance_uid
                )
            elif result.permanent or row.attempts >= MAX_INSTANCE_ATTEMPTS:
                row.state, row.last_error = InstanceState.FAILED, result.message or "refused by the destination"
            else:  # a refusal the destination may lift (out of resources): send it again on the next pass
                row.state, row.last_error = InstanceState.PENDING, result.message
        _update_each(rows, ["state", "attempts", "last_error"])
    return stored


def _give_up_or_retry_undelivered(transfer: Transfer) -> None:
    """Instances the source did not deliver (or the destination refused for now) get another pass later."""
    left = transfer.instances.filter(state__in=(InstanceState.PENDING, InstanceState.RETRIEVED))
    if not left.exists():
        return
    with transaction.atomic():
        rows = list(left.select_for_update())
        for row in rows:
            row.attempts += 1
            if row.attempts >= MAX_INSTANCE_ATTEMPTS:
                row.state = InstanceState.FAILED
                row.last_error = row.last_error or "the source gateway did not deliver it"
            else:
                row.state = InstanceState.PENDING
        TransferInstance.objects.bulk_update(rows, ["state", "attempts", "last_error", "updated_at"])
    waiting = sum(1 for row in rows if row.state == InstanceState.PENDING)
    if waiting:
        raise TransientTransferError(f"{waiting} instances have not arrived yet; trying again.")


def _verify(transfer: Transfer, destination: GatewayClient, confirmed: dict[str, set[str]] | None = None) -> None:
    """The destination's own index must list every instance the ledger says it stored. `confirmed`:
    those it was already seen to list during this pass; the rest are looked up now, a study at a time."""
    confirmed = confirmed or {}
    stored = transfer.instances.filter(state=InstanceState.STORED)
    for study_uid in transfer.study_instance_uids:
        expected = set(stored.filter(study_instance_uid=study_uid).values_list("sop_instance_uid", flat=True))
        unconfirmed = expected - confirmed.get(study_uid, set())
        if not unconfirmed:
            continue
        missing = unconfirmed - destination.find_instance_uids(study_uid)
        if missing:
            stored.filter(sop_instance_uid__in=missing).update(
                state=InstanceState.FAILED,
                last_error=f"{destination.config.name} accepted it but does not list it in its index",
            )


VERIFY_GROUP = 50  # SOP Instance UIDs per look-up: a QIDO-RS URL stays under 4 kB


class _Verifier:
    """Looks up stored instances in the destination's index while later batches are still being sent,
    in groups of up to VERIFY_GROUP UIDs (UID list matching), from a thread that never touches the
    database. It only ever confirms: a UID it does not find, or any error (a gateway without UID list
    matching, say), is left to `_verify`'s look-up of the whole study at the end."""

    _DONE = ("", [])

    def __init__(self, destination: GatewayClient) -> None:
        self.destination = destination
        self.confirmed: dict[str, set[str]] = {}
        self.waiting: queue.Queue[tuple[str, list[str]]] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="transfer-verify", daemon=True)
        self.thread.start()

    def check(self, stored: dict[str, list[str]]) -> None:
        for study_uid, uids in stored.items():
            usable = [uid for uid in uids if is_uid(uid)]
            for start in range(0, len(usable), VERIFY_GROUP):
                self.waiting.put((study_uid, usable[start : start + VERIFY_GROUP]))

    def _run(self) -> None:
        held: tuple[str, list[str]] | None = None
        while True:
            item, held = held or self.waiting.get(), None
            if item is self._DONE:
                return
            study_uid, uids = item
            while len(uids) < VERIFY_GROUP:  # catch up: one look-up for what queued meanwhile
                try:
                    following = self.waiting.get_nowait()
                except queue.Empty:
                    break
                if following is self._DONE or following[0] != study_uid or len(uids) + len(following[1]) > VERIFY_GROUP:
                    held = following
                    break
                uids = uids + following[1]
            try:
                found = self.destination.find_instance_uids(study_uid, uids)
            except Exception:
                log.info("progressive_verification_off", exc_info=True)
                return
            self.confirmed.setdefault(study_uid, set()).update(found & set(uids))

    def finish(self) -> dict[str, set[str]]:
        """Wait for the look-ups queued so far; the UIDs confirmed, by study."""
        self.waiting.put(self._DONE)
        self.thread.join()
        return self.confirmed

    def close(self) -> None:
        """Stop without the look-ups still queued (after an error, or once finished)."""
        while True:
            try:
                self.waiting.get_nowait()
            except queue.Empty:
                break
        self.waiting.put(self._DONE)
        self.thread.join()


def _finish(transfer: Transfer, owner: str) -> str:
    status = completion.transfer_complete(transfer.pk, owner=owner)
    if status is None:  # cancelled meanwhile, or another worker holds it now
        raise Stopped
    return status


# --- failures the task decides about --------------------------------------------------------------


def fail(transfer_id: int, reason: str) -> None:
    """End the transfer as failed with a reason a person can act on; what was stored stays stored."""
    completion.transfer_fail(transfer_id, reason)


def next_retry_delay(transfer_id: int, error: Exception, *, jitter: float) -> float | None:
    """Seconds until the next try after a transient error, or None once the retry window has passed
    (the transfer is then failed). `jitter` in [0, 1) spreads retries of many transfers apart."""
    now = timezone.now()
    with transaction.atomic():
        transfer = Transfer.objects.select_for_update().get(pk=transfer_id)
        if transfer.status in FINISHED:
            return None
        transfer.first_transient_error_at = transfer.first_transient_error_at or now
        transfer.transient_failures += 1
        transfer.save(update_fields=["first_transient_error_at", "transient_failures"])
        elapsed = (now - transfer.first_transient_error_at).total_seconds()
        tries = transfer.transient_failures
    if elapsed >= settings.TRANSFER_RETRY_WINDOW:
        fail(transfer_id, f"Gave up after {tries} tries over {_duration(elapsed)}; last error: {error}")
        return None
    delay = min(settings.TRANSFER_RETRY_MAX_DELAY, settings.TRANSFER_RETRY_BASE_DELAY * 2 ** (tries - 1))
    return delay / 2 + delay / 2 * jitter


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def note_waiting(transfer_id: int) -> None:
    """A transfer waiting for a gateway slot is alive: its heartbeat says so, so the sweeper does not
    queue it again and again. A live worker's lease is left alone; a lease silent for a whole lease
    period belongs to a dead worker (claim() would take it over), so it is dropped rather than made
    to look fresh, and the waiting task becomes the transfer's carrier."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.TRANSFER_LEASE_SECONDS)
    waiting = Transfer.objects.filter(pk=transfer_id).exclude(status__in=FINISHED)
    waiting.filter(Q(lease_owner="") | Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=stale)).update(
        lease_owner="", heartbeat_at=now
    )


@contextmanager
def _keepalive(transfer: Transfer, owner: str) -> Iterator[None]:
    """Beat from a helper thread while this one waits on a single long call (a C-FIND or QIDO-RS that
    lists thousands of instances), so the lease and the gateway slots stay fresh. The loops that move
    instances beat for themselves; if this thread finds the transfer stopped it just ends, and the
    main thread notices at its own next beat."""
    done = threading.Event()

    def beat() -> None:
        try:
            while not done.wait(heartbeat_interval()):
                _beat(transfer, owner)
        except Stopped:
            pass
        except Exception:
            log.warning("keepalive_failed", transfer_id=transfer.pk, exc_info=True)
        finally:
            connections.close_all()  # this thread's own connections

    thread = threading.Thread(target=beat, name="transfer-keepalive", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
