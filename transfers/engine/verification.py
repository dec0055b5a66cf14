"""Proof of delivery beyond each instance's store status: the destination's own index must list every
instance the ledger says it stored. Most of it is looked up while later batches are still on their way
(`Verifier`); what is left, at the end (`verify`)."""

from __future__ import annotations

import queue
import threading
from functools import partial

import structlog

from dicomkit import GatewayClient
from dicomkit.validate import is_uid

from ..models import Transfer
from . import ledger
from .lease import Lease

VERIFY_GROUP = 50  # SOP Instance UIDs per look-up: a QIDO-RS URL stays under 4 kB
log = structlog.get_logger(__name__)


def verify(
    transfer: Transfer, destination: GatewayClient, lease: Lease, confirmed: dict[str, set[str]] | None = None
) -> None:
    """`confirmed`: what the destination was already seen to list during this pass; the rest is looked up
    now, a study at a time (each look-up renewing the lease while it runs). Unlisted instances fail."""
    confirmed = confirmed or {}
    for study_uid in transfer.study_instance_uids:
        unconfirmed = ledger.stored_uids(transfer, study_uid) - confirmed.get(study_uid, set())
        if not unconfirmed:
            continue
        listed = lease.wait(partial(destination.find_instance_uids, study_uid))
        missing = unconfirmed - listed
        if missing:
            ledger.fail_unlisted(transfer, missing, destination.config.name)


_Group = tuple[str, list[str]]


class Verifier:
    """Looks up stored instances in the destination's index while later batches are still being sent,
    in groups of up to VERIFY_GROUP UIDs (UID list matching), from a thread that never touches the
    database. It only ever confirms: a UID it does not find, or any error (a gateway without UID list
    matching, say), is left to `verify`'s look-up of the whole study at the end."""

    _DONE: _Group = ("", [])

    def __init__(self, destination: GatewayClient) -> None:
        self.destination = destination
        self.confirmed: dict[str, set[str]] = {}
        self.waiting: queue.Queue[_Group] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="transfer-verify", daemon=True)
        self.thread.start()

    def check(self, stored: dict[str, list[str]]) -> None:
        for study_uid, uids in stored.items():
            usable = [uid for uid in uids if is_uid(uid)]
            for start in range(0, len(usable), VERIFY_GROUP):
                self.waiting.put((study_uid, usable[start : start + VERIFY_GROUP]))

    def _run(self) -> None:
        held: _Group | None = None
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

    def finish(self, lease: Lease) -> dict[str, set[str]]:
        """Wait (renewing the lease) for the look-ups queued so far; the UIDs confirmed, by study."""
        self.waiting.put(self._DONE)
        lease.join(self.thread)
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
