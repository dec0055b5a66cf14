"""One client interface per gateway; each operation goes over the protocol its config names."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import requests

from .config import GatewayConfig, validate_ae_title
from .dicomweb import DicomWebClient
from .dimse import DimseClient
from .models import EchoResult, Instance, Series, StoreResult, Study, StudyQuery
from .moves import MoveDestination
from .retrieval import Retrieval


class GatewayClient:
    """echo / find_* / retrieve / store against one trust gateway.

    Build it with `client_for()`. Methods raise GatewayError (see `.permanent`) except `echo`,
    which reports failure in its result, and `store`, which reports per-instance refusals.
    """

    def __init__(self, config: GatewayConfig, dimse: DimseClient | None, web: DicomWebClient | None) -> None:
        self.config = config
        self.dimse = dimse
        self.web = web

    def echo(self) -> EchoResult:
        """C-ECHO if the gateway speaks DIMSE, a QIDO-RS ping if it speaks DICOMweb; both must pass."""
        results = [client.echo() for client in (self.dimse, self.web) if client is not None]
        failed = [r for r in results if not r.ok]
        if failed:
            return failed[0]
        return EchoResult(ok=True, latency_ms=max(r.latency_ms or 0.0 for r in results))

    def _query(self) -> DimseClient | DicomWebClient:
        return self.dimse if self.config.query_method == "c-find" else self.web  # type: ignore[return-value]

    def find_studies(self, query: StudyQuery) -> list[Study]:
        return self._query().find_studies(query)

    def find_series(self, study_uid: str) -> list[Series]:
        return self._query().find_series(study_uid)

    def find_instances(self, study_uid: str, series_uid: str | None = None) -> list[Instance]:
        return self._query().find_instances(study_uid, series_uid)

    def find_instance_uids(self, study_uid: str, sop_uids: Sequence[str] = ()) -> set[str]:
        """Which of `sop_uids` (or of all the study's instances) the gateway's own index lists."""
        return self._query().find_instance_uids(study_uid, sop_uids)

    def retrieve(
        self,
        study_uid: str,
        series_uid: str | None = None,
        sop_uids: Sequence[str] | None = None,
        *,
        spool_dir: Path | str,
        label: str = "",
    ) -> Retrieval:
        """Instances land one by one as `spool_dir/<SOP Instance UID>.dcm`; iterate to receive them.

        `label` travels with a C-MOVE job to the receiver's `on_arrival` hook (e.g. a transfer id).
        """
        if self.config.retrieve_method == "wado-rs":
            assert self.web is not None  # noqa: S101 - client_for builds it for wado-rs
            return self.web.retrieve(study_uid, series_uid, sop_uids, spool_dir=Path(spool_dir))
        assert self.dimse is not None  # noqa: S101 - client_for builds it for DIMSE methods
        return self.dimse.retrieve(study_uid, series_uid, sop_uids, spool_dir=Path(spool_dir), label=label)

    def store(self, paths: Iterable[Path | str]) -> list[StoreResult]:
        client = self.dimse if self.config.store_method == "c-store" else self.web
        assert client is not None  # noqa: S101
        return client.store(paths)


def client_for(
    config: GatewayConfig,
    *,
    local_ae_title: str,
    move_destination: MoveDestination | None = None,
    session: requests.Session | None = None,
) -> GatewayClient:
    """The client for `config`, calling as `local_ae_title` (the portal's AE title).

    `move_destination` (our receiver's AE and jobs folder, e.g. `StorageReceiver.move_destination`)
    is needed when the gateway retrieves by C-MOVE.
    """
    local = validate_ae_title(local_ae_title, what="Portal AE title")
    dimse = DimseClient(config, local_ae_title=local, move_destination=move_destination) if config.uses_dimse else None
    web = DicomWebClient(config, session=session) if config.uses_dicomweb else None
    return GatewayClient(config, dimse, web)
