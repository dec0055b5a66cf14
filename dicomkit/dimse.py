"""DIMSE gateway client: C-ECHO, C-FIND, C-STORE here; C-GET and C-MOVE in dimse_retrieve."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, ExplicitVRLittleEndian
from pynetdicom.association import Association
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind, Verification
from pynetdicom.status import STORAGE_SERVICE_CLASS_STATUS, code_to_category

from . import dcmsend
from .association import check_status, is_pending, new_ae, open_association, settle
from .config import GatewayConfig
from .errors import GatewayError, InvalidInstance
from .identity import text
from .models import EchoResult, Instance, Series, StoreResult, Study, StudyQuery
from .moves import MoveDestination
from .queries import (
    instance_from,
    instance_identifier,
    instance_uid_identifier,
    merge_studies,
    series_from,
    series_identifier,
    study_identifiers,
)
from .retrieval import Retrieval
from .structure import file_meta
from .transcode import UNCOMPRESSED, decompressed, storage_proposal

MAX_CONTEXTS = 128
DUPLICATE_SOP_INSTANCE = 0x0111  # PS3.7 C.4.2: the peer already holds an instance with this UID


@dataclass(frozen=True)
class _Outgoing:
    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str


class DimseClient:
    """Talks DIMSE to one gateway, calling as `local_ae_title`."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        local_ae_title: str,
        move_destination: MoveDestination | None = None,
    ) -> None:
        self.config = config
        self.local_ae_title = local_ae_title
        self.move_destination = move_destination

    # --- C-ECHO ----------------------------------------------------------------------------------

    def echo(self) -> EchoResult:
        ae = new_ae(self.local_ae_title, self.config)
        ae.add_requested_context(Verification)
        started = time.monotonic()
        try:
            with open_association(ae, self.config) as assoc:
                check_status(assoc.send_c_echo(), self.config, "C-ECHO")
        except GatewayError as exc:
            return EchoResult(ok=False, latency_ms=None, error=str(exc))
        return EchoResult(ok=True, latency_ms=round((time.monotonic() - started) * 1000, 1))

    # --- C-FIND ----------------------------------------------------------------------------------

    def find(self, identifiers: Sequence[Dataset]) -> list[Dataset]:
        """Run each identifier through Study Root C-FIND over one association; all matches."""
        ae = new_ae(self.local_ae_title, self.config)
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
        answers: list[Dataset] = []
        with open_association(ae, self.config) as assoc:
            for identifier in identifiers:
                for status, answer in assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind):
                    code = check_status(status, self.config, "C-FIND")
                    if is_pending(code) and answer is not None:
                        answers.append(answer)
                settle(assoc)
        return answers

    def find_studies(self, query: StudyQuery) -> list[Study]:
        return merge_studies(self.find(study_identifiers(query)), query)

    def find_series(self, study_uid: str) -> list[Series]:
        found = [series_from(ds) for ds in self.find([series_identifier(study_uid)])]
        return sorted(found, key=lambda s: (s.series_number is None, s.series_number or 0))

    def find_instances(self, study_uid: str, series_uid: str | None = None) -> list[Instance]:
        found = [instance_from(ds) for ds in self.find([instance_identifier(study_uid, series_uid)])]
        return sorted(found, key=lambda i: (i.series_instance_uid, i.instance_number or 0))

    def find_instance_uids(self, study_uid: str, sop_uids: Sequence[str] = ()) -> set[str]:
        """The SOP Instance UIDs of the study the gateway holds, among `sop_uids` if given."""
        answers = self.find([instance_uid_identifier(study_uid, sop_uids)])
        return {text(ds, "SOPInstanceUID") for ds in answers} - {""}

    # --- C-GET / C-MOVE --------------------------------------------------------------------------

    def retrieve(
        self,
        study_uid: str,
        series_uid: str | None = None,
        sop_uids: Sequence[str] | None = None,
        *,
        spool_dir: Path,
        method: str | None = None,
        max_pending: int = 64,
        label: str = "",
    ) -> Retrieval:
        from . import dimse_retrieve

        method = method or self.config.retrieve_method
        if method == "c-move":
            return dimse_retrieve.cmove(self, study_uid, series_uid, sop_uids, Path(spool_dir), label=label)
        return dimse_retrieve.cget(self, study_uid, series_uid, sop_uids, Path(spool_dir), max_pending=max_pending)

    # --- C-STORE ---------------------------------------------------------------------------------

    def store(self, paths: Iterable[Path | str]) -> list[StoreResult]:
        """Send each file; one result per file, in order. Association problems raise GatewayError."""
        results: dict[Path, StoreResult] = {}
        outgoing: list[_Outgoing] = []
        order = [Path(p) for p in paths]
        for path in order:
            try:
                meta = file_meta(path)
                outgoing.append(_Outgoing(path, meta.sop_class_uid, meta.sop_instance_uid, meta.transfer_syntax_uid))
            except (OSError, ValueError, AttributeError, InvalidDicomError) as exc:  # not sendable as is
                results[path] = StoreResult(path, "", False, message=f"not a DICOM file: {exc}", permanent=True)
        if outgoing and self.config.store_sender == "dcmsend" and dcmsend.available():
            answers = dcmsend.send(self.config, self.local_ae_title, [item.path for item in outgoing])
            for item in outgoing:
                if item.path in answers:
                    results[item.path] = self._store_result(item, _status(answers[item.path]), False)
            # What dcmsend gave no answer for (a transfer syntax the peer does not accept, which pynetdicom
            # can decode; an association that ended early): sent by pynetdicom.
            outgoing = [item for item in outgoing if item.path not in answers]
        for group in _context_groups(outgoing):
            results.update(self._store_group(group))
        return [results[p] for p in order]

    def _store_group(self, group: list[_Outgoing]) -> dict[Path, StoreResult]:
        ae = new_ae(self.local_ae_title, self.config)
        for abstract, syntaxes in _contexts_for(group):
            ae.add_requested_context(abstract, syntaxes)
        results: dict[Path, StoreResult] = {}
        with open_association(ae, self.config) as assoc:
            for item in group:
                result = self._store_one(assoc, item)
                results[item.path] = result
                if not assoc.is_established:
                    break
                settle(assoc)
        for item in group:  # left unsent because the association ended early
            results.setdefault(
                item.path,
                StoreResult(
                    item.path, item.sop_instance_uid, False, message=f"{self.config.name} ended the association"
                ),
            )
        return results

    def _store_one(self, assoc: Association, item: _Outgoing) -> StoreResult:
        accepted = {(str(cx.abstract_syntax), str(cx.transfer_syntax[0])) for cx in assoc.accepted_contexts}
        decompress = False
        try:
            if (item.sop_class_uid, item.transfer_syntax_uid) in accepted:
                status = assoc.send_c_store(item.path)  # streamed from disk, bytes as stored
            elif any((item.sop_class_uid, ts) in accepted for ts in UNCOMPRESSED):
                decompress = UID(item.transfer_syntax_uid).is_compressed
                dataset = decompressed(item.path) if decompress else dcmread(item.path)
                status = assoc.send_c_store(dataset)
            else:
                return StoreResult(
                    item.path,
                    item.sop_instance_uid,
                    False,
                    message=f"{self.config.name} accepts no transfer syntax for {UID(item.sop_class_uid).name}",
                    permanent=True,
                )
        except InvalidInstance as bad:
            return StoreResult(item.path, item.sop_instance_uid, False, bad.status, bad.reason, permanent=True)
        except (ValueError, AttributeError, OSError) as exc:  # pynetdicom's "cannot send this dataset"
            return StoreResult(
                item.path, item.sop_instance_uid, False, message=f"cannot be sent: {exc}", permanent=True
            )
        return self._store_result(item, status, decompress)

    def _store_result(self, item: _Outgoing, status: Dataset, decompressed_: bool) -> StoreResult:
        sent_ts = str(ExplicitVRLittleEndian) if decompressed_ else item.transfer_syntax_uid
        if "Status" not in status:
            return StoreResult(
                item.path,
                item.sop_instance_uid,
                False,
                message=f"{self.config.name} stopped answering (no C-STORE response within "
                f"{self.config.dimse_timeout:g} s, or the association was aborted)",
            )
        code = int(status.Status)
        if code == DUPLICATE_SOP_INSTANCE:
            return StoreResult(
                item.path,
                item.sop_instance_uid,
                True,
                code,
                f"{self.config.name} already holds it (0x0111 Duplicate SOP Instance)",
                transfer_syntax_uid=sent_ts,
                decompressed=decompressed_,
                already_present=True,
            )
        category = code_to_category(code)
        ok = category in ("Success", "Warning")
        message = ""
        if not ok or category == "Warning":
            meaning = STORAGE_SERVICE_CLASS_STATUS.get(code, (category, "unknown status"))[1]
            comment = str(status.get("ErrorComment", "") or "").strip()
            message = f"{self.config.name} answered 0x{code:04X} ({meaning}){': ' + comment if comment else ''}"
        return StoreResult(
            item.path,
            item.sop_instance_uid,
            ok,
            code,
            message,
            transfer_syntax_uid=sent_ts,
            decompressed=decompressed_,
            permanent=not ok and not 0xA700 <= code <= 0xA7FF,
        )


def _status(answer: dcmsend.Answer) -> Dataset:
    status = Dataset()
    status.Status = answer.status
    return status


def _contexts_for(items: Iterable[_Outgoing]) -> list[tuple[str, list[str]]]:
    return storage_proposal((i.sop_class_uid, i.transfer_syntax_uid) for i in items)


def _context_groups(items: list[_Outgoing]) -> list[list[_Outgoing]]:
    """Split files so that no association needs more than 128 presentation contexts."""
    groups: list[list[_Outgoing]] = []
    current: list[_Outgoing] = []
    for sop_class in dict.fromkeys(i.sop_class_uid for i in items):
        members = [i for i in items if i.sop_class_uid == sop_class]
        if current and len(_contexts_for(current + members)) > MAX_CONTEXTS:
            groups.append(current)
            current = []
        current.extend(members)
    if current:
        groups.append(current)
    return groups
