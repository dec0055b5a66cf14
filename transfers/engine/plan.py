"""The plan: each study's instances as the source's own index lists them, so progress has its total and
an instance the source lists but does not deliver is noticed."""

from __future__ import annotations

import threading

from dicomkit import GatewayClient, GatewayError, Instance, Study, StudyQuery

from ..models import Transfer
from . import ledger
from .lease import Lease


class Planner:
    """The queries run in a helper thread (no database) while the first study already moves; `record()`,
    in the thread that runs the transfer, writes the ledger rows and raises what a query raised."""

    def __init__(self, transfer: Transfer, source: GatewayClient, lease: Lease) -> None:
        self.transfer, self.source, self.lease = transfer, source, lease
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
        """Wait for the listing (renewing the lease: a C-FIND over a big study can outlast it), then write
        the patient and the ledger rows."""
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
        listed = [uid for uid, found in self.found.items() if found]
        for study_uid, found in self.found.items():
            if not found:  # not marked listed: asked again next pass, in case it was still arriving
                error = f"{self.source.config.name} holds no instances of this study."
                ledger.add_error(transfer, study_uid=study_uid, error=error)
                continue
            ledger.add_planned(transfer, study_uid, found)
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
