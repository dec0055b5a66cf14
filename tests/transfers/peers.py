"""Two real Orthanc servers (trust A's and trust B's PACS) and a synthetic study held by A."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from directory.models import Gateway, Trust
from tests.dicom.conftest import need
from tests.dicom.orthanc import OrthancProcess, free_port, orthanc_available


@dataclass(frozen=True)
class Study:
    uid: str
    paths: list[Path]

    @property
    def sop_uids(self) -> set[str]:
        return {p.stem for p in self.paths}

    @property
    def size(self) -> int:
        return sum(p.stat().st_size for p in self.paths)


def start_orthanc(workdir: Path, aet: str, extra: dict[str, object] | None = None) -> OrthancProcess:
    need(orthanc_available(), "Orthanc with the DICOMweb plugin")
    # The portal calls as DICOM_AE_TITLE; C-GET and C-FIND need it registered as a modality.
    portal = {"portal": (settings.DICOM_AE_TITLE, "127.0.0.1", free_port())}
    return OrthancProcess(workdir, aet=aet, modalities=portal, extra=extra or {}).start()


def orthanc_gateway(trust: Trust, server: OrthancProcess, **overrides: object) -> Gateway:
    values = {
        "trust": trust,
        "name": server.aet,
        "ae_title": server.aet,
        "host": "127.0.0.1",
        "port": server.dicom_port,
        "retrieve_method": "c-get",
        "store_method": "c-store",
        "query_method": "c-find",
        **overrides,
    }
    return Gateway.objects.create(**values)


def sop_uids_held(server: OrthancProcess, study_uid: str) -> list[str]:
    """SOP Instance UIDs in the server's own index (POST /tools/find), one entry per stored instance."""
    found = server.find("Instance", {"StudyInstanceUID": study_uid}, expand=True)
    return [item["MainDicomTags"]["SOPInstanceUID"] for item in found]
