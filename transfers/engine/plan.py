"""The plan: how many instances each study holds, from the source's series-level counts (answered from
its index, no file read) before the first byte moves, so progress has its total. Ledger rows are added
as instances are retrieved. The source's instance-level listing (a PACS may read every file to answer
it) is asked for only when a pass resumes a study, or when what arrived falls short of the count."""

from __future__ import annotations

import threading
from collections.abc import Collection
from functools import partial

from dicomkit import GatewayClient, GatewayError, Series, Study, StudyQuery

from ..models import Transfer
from . import ledger
from .lease import Lease


class Planner:
    """The counts are asked for in a helper thread (no database) while the first study already moves;
    `record()`, in the thread that runs the transfer, writes them and raises what a query raised."""

    def __init__(self, transfer: Transfer, source: GatewayClient, lease: Lease) -> None:
        self.transfer, self.source, self.lease = transfer, source, lease
        self.studies = [uid for uid in transfer.study_instance_uids if uid not in transfer.planned]
        self.need_patient = not transfer.patient_id and not transfer.nhs_number
        self.found: dict[str, list[Series]] = {}
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
                    self.found[study_uid] = self.source.find_series(study_uid)
        except BaseException as exc:  # noqa: BLE001 - raised by record(), in the thread that runs the transfer
            self.error = exc

    def record_if_ready(self) -> None:
        if not self.recorded and not self.thread.is_alive():
            self.record()

    def record(self) -> None:
        """Wait for the counts (renewing the lease), then write the patient and the plan."""
        if self.recorded:
            return
        self.lease.join(self.thread)
        self.recorded = True
        if self.error is not None:
            raise self.error
        transfer = self.transfer
        if self.patient is not None:
            transfer.patient_id = self.patient.patient_id[:64]
            transfer.nhs_number = self.patient.nhs_number if len(self.patient.nhs_number) == 10 else ""
            transfer.save(update_fields=["patient_id", "nhs_number"])
        for study_uid, series in self.found.items():
            if not series:  # not planned: asked again next pass, in case it was still arriving
                error = f"{self.source.config.name} holds no instances of this study."
                ledger.add_error(transfer, study_uid=study_uid, error=error)
                continue
            counts = [s.instance_count for s in series]
            if any(count is None for count in counts):  # a PACS that does not count: its listing, then
                self.list_instances(study_uid)
            else:
                self._plan(study_uid, sum(c or 0 for c in counts))

    def _plan(self, study_uid: str, count: int) -> None:
        transfer = self.transfer
        transfer.planned = {**transfer.planned, study_uid: count}
        transfer.instances_planned = sum(transfer.planned.values())
        transfer.save(update_fields=["planned", "instances_planned"])

    def list_instances(self, study_uid: str, present: Collection[str] = ()) -> int:
        """The source's instance-level listing of the study into the ledger (`present`: UIDs the
        destination already holds). Returns how many instances it lists."""
        found = self.lease.wait(partial(self.source.find_instances, study_uid))
        ledger.add_planned(self.transfer, study_uid, found, present)
        if found:  # after the rows: a pass that dies in between lists the study again
            transfer = self.transfer
            transfer.listed_studies = [*transfer.listed_studies, study_uid]
            transfer.save(update_fields=["listed_studies"])
            if transfer.planned.get(study_uid, 0) < len(found):
                self._plan(study_uid, len(found))
        return len(found)

    def is_listed(self, study_uid: str) -> bool:
        """Whether the ledger has a row for every instance of the study (listed, or all arrived)."""
        return study_uid in self.transfer.listed_studies

    def complete(self, study_uid: str) -> None:
        """After a retrieval: when fewer instances arrived than the plan counts (some refused on
        arrival, or not delivered), list the source's instances so the missing ones have rows (retried
        or failed with their reason). Otherwise the study is known in full without that listing."""
        if self.is_listed(study_uid):
            return
        self.record()
        planned = self.transfer.planned.get(study_uid)
        if planned is None:
            return  # the source holds none of it: the plan says so
        if ledger.study_rows(self.transfer, study_uid) < planned:
            self.list_instances(study_uid)
        else:
            transfer = self.transfer
            transfer.listed_studies = [*transfer.listed_studies, study_uid]
            transfer.save(update_fields=["listed_studies"])

    def holds_nothing_of(self, study_uid: str) -> bool:
        """Whether the source's index counted no instance of the study (recording the plan first)."""
        try:
            self.record()
        except GatewayError:
            return False
        return self.found.get(study_uid) == []

    def close(self) -> None:
        self.thread.join()
