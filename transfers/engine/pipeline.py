"""Moving one study: the source's retrieval, iterated in a thread of its own, feeds a bounded queue
(`Pipe`); the thread that runs the transfer takes batches from it, records them in the ledger, passes
them through the registered stages (reconciliation) and hands them to a small pool of store streams
(`Stores`), recording each batch's outcome when it comes back."""

from __future__ import annotations

import queue
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal

import structlog
from django.utils import timezone

from dicomkit import GatewayClient, GatewayError, Retrieval, RetrievedInstance, RetrieveSummary, StoreResult

from .. import stages
from ..models import Status, Transfer
from . import ledger, refusals
from .errors import StoppedAtRefusal
from .lease import Lease, heartbeat_interval
from .plan import Planner
from .presence import learn_present

# Instances per C-STORE association / STOW-RS request, and per ledger write: fewer, larger batches cost
# this thread fewer database round trips (32 measured faster than 16 and 64 on the throughput benchmark).
BATCH_SIZE = 32
QUEUE_SIZE = 32  # instances retrieved and waiting to be stored: with the retriever's own, the spool's bound
log = structlog.get_logger(__name__)


@dataclass
class Clients:
    source: GatewayClient
    destination: GatewayClient


def move_study(
    transfer: Transfer,
    lease: Lease,
    clients: Clients,
    study_uid: str,
    folder: Path,
    streams: int = 1,
    planner: Planner | None = None,
) -> None:
    """Retrieve what of the study is still to send and store it at the destination. Raises
    StoppedAtRefusal when the source stopped at an instance we refused (ask again for the rest)."""
    if planner is not None and not planner.is_listed(study_uid):
        if ledger.has_rows(transfer, study_uid):
            # A pass resumes the study: its rows cover only what the last pass reached, so list the
            # source's instances before choosing what to ask it for.
            planner.list_instances(study_uid)
        else:
            learn_present(planner, clients.destination, lease, study_uid)
    rows, todo = ledger.study_todo(transfer, study_uid)
    if rows and not todo:
        return
    # Ask for the whole study when nothing of it has moved yet (one request); else only what is left.
    sop_uids = None if len(todo) == rows else todo
    since = timezone.now() - timedelta(seconds=60)  # C-MOVE refusals are dated by the receiver's clock
    retrieval = clients.source.retrieve(study_uid, sop_uids=sop_uids, spool_dir=folder / "in", label=str(transfer.pk))
    pipe = Pipe(retrieval)
    pipe.start()
    stores = Stores(transfer, lease, clients.destination, streams)
    try:
        while True:
            stores.wait_for_room()
            batch, done = pipe.take(BATCH_SIZE, timeout=heartbeat_interval())
            batch = only_of_study(transfer, clients.source, study_uid, batch)
            lease.beat()
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
        if refusals.after_retrieve(transfer, planner, study_uid, retrieval.summary, since):
            raise StoppedAtRefusal from exc
        raise
    finally:
        stores.close()
        pipe.stop()
    if planner is not None:
        planner.complete(study_uid)  # fewer arrived than counted: the source's listing names the missing
    refusals.after_retrieve(transfer, planner, study_uid, retrieval.summary, since)


def only_of_study(
    transfer: Transfer, source: GatewayClient, study_uid: str, batch: list[RetrievedInstance]
) -> list[RetrievedInstance]:
    """What the source sent of the study asked for. Anything else (a PACS whose index and files disagree)
    is another patient's, perhaps: never passed on, and the transfer says so."""
    strays = [item for item in batch if item.study_instance_uid != study_uid]
    if not strays:
        return batch
    discard(strays)
    for other in sorted({item.study_instance_uid for item in strays}):
        ledger.add_error(
            transfer,
            study_uid=study_uid,
            error=f"{source.config.name} answered with instances of another study ({other or 'no Study UID'}); "
            "they were not passed on.",
        )
    return [item for item in batch if item.study_instance_uid == study_uid]


def discard(items: list[RetrievedInstance]) -> None:
    for item in items:
        item.path.unlink(missing_ok=True)


_Message = (
    tuple[Literal["item"], RetrievedInstance]
    | tuple[Literal["done"], RetrieveSummary]
    | tuple[Literal["error"], BaseException]
)


class Pipe:
    """The retrieval generator, iterated in its own thread (no database), feeding a bounded queue."""

    def __init__(self, retrieval: Retrieval) -> None:
        self.retrieval = retrieval
        self.queue: queue.Queue[_Message] = queue.Queue(maxsize=QUEUE_SIZE)
        self.halt = threading.Event()
        self.summary: RetrieveSummary | None = None  # once the retrieval has ended
        self.thread = threading.Thread(target=self._pump, name="transfer-retrieve", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _put(self, message: _Message) -> bool:
        while not self.halt.is_set():
            try:
                self.queue.put(message, timeout=0.25)
                return True
            except queue.Full:
                continue
        return False

    def _pump(self) -> None:
        try:
            for item in self.retrieval:
                if not self._put(("item", item)):
                    return
            self._put(("done", self.retrieval.summary))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the storing thread
            self._put(("error", exc))
        finally:
            self.retrieval.close()

    def take(self, size: int, timeout: float) -> tuple[list[RetrievedInstance], bool]:
        """Up to `size` instances; waits at most `timeout` for the first. True once retrieval ended."""
        batch: list[RetrievedInstance] = []
        try:
            message = self.queue.get(timeout=timeout)
        except queue.Empty:
            return batch, False
        while True:
            if message[0] == "error":
                discard(batch)
                raise message[1]
            if message[0] == "done":
                self.summary = message[1]
                return batch, True
            batch.append(message[1])
            if len(batch) >= size:
                return batch, False
            try:
                message = self.queue.get_nowait()
            except queue.Empty:
                return batch, False

    def stop(self) -> None:
        self.halt.set()
        while True:  # unblock the pump and delete what it had spooled
            try:
                message = self.queue.get_nowait()
            except queue.Empty:
                break
            if message[0] == "item":
                discard([message[1]])
        self.thread.join(timeout=30)


_InFlight = tuple[Future[list[StoreResult]], list[RetrievedInstance], list[RetrievedInstance]]


class Stores:
    """Batches on their way to the destination: sent from a pool of `streams` threads (no database),
    recorded in the ledger by the thread that runs the transfer as they come back."""

    def __init__(
        self,
        transfer: Transfer,
        lease: Lease,
        destination: GatewayClient,
        streams: int,
    ) -> None:
        self.transfer, self.lease, self.destination = transfer, lease, destination
        self.streams = max(1, streams)
        self.pool = ThreadPoolExecutor(max_workers=self.streams, thread_name_prefix="transfer-store")
        self.in_flight: list[_InFlight] = []

    def send(self, batch: list[RetrievedInstance]) -> None:
        """Ledger to `retrieved`, the registered stages (reconciliation), then off to a store stream (the
        files are deleted once it has come back)."""
        try:
            to_send = ledger.mark_retrieved(self.transfer, batch)
            to_send = stages.prepare_batch(self.transfer, self.destination, to_send)
            if to_send and self.transfer.status != Status.SENDING:
                self.lease.renew(Status.SENDING)
        except BaseException:
            discard(batch)
            raise
        if not to_send:
            discard(batch)
            return
        future = self.pool.submit(self.destination.store, [item.path for item in to_send])
        self.in_flight.append((future, batch, to_send))

    def wait_for_room(self) -> None:
        """Block (beating) while every stream is busy."""
        while len(self.in_flight) >= self.streams:
            wait([f for f, _, _ in self.in_flight], timeout=heartbeat_interval(), return_when=FIRST_COMPLETED)
            self.lease.beat()
            self.collect()

    def collect(self) -> None:
        """Record the batches that have come back; a stream's GatewayError is raised here."""
        for entry in [e for e in self.in_flight if e[0].done()]:
            self.in_flight.remove(entry)
            future, batch, sent = entry
            try:
                ledger.mark_stored(self.transfer, sent, future.result())
            finally:
                discard(batch)

    def finish(self) -> None:
        while self.in_flight:
            wait([f for f, _, _ in self.in_flight], timeout=heartbeat_interval(), return_when=FIRST_COMPLETED)
            self.lease.beat()
            self.collect()

    def close(self) -> None:
        """After an error: let the batches on the wire end (nothing may still be sending once the slots
        are released), record what they stored, and delete their files."""
        for future, batch, sent in self.in_flight:
            try:
                ledger.mark_stored(self.transfer, sent, future.result())
            except Exception:  # the first error is already on its way up; these are sent again on resume
                log.warning("store_batch_not_recorded", transfer_id=self.transfer.pk, exc_info=True)
            finally:
                discard(batch)
        self.in_flight.clear()
        self.pool.shutdown(wait=True)
