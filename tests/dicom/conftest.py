"""Real peers for the DICOM tests: Orthanc processes, the simulated PACS, the portal's receiver.

Nothing here touches Django or a database. Servers and studies are session-scoped: each Orthanc
starts once per test session (per xdist worker) and is stopped in teardown.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dicomkit import GatewayConfig, StorageReceiver, client_for
from dicomkit.gateway import GatewayClient
from dicomkit.intake import Arrival
from dicomkit.quarantine import QuarantineRecord
from dicomkit.sim.pacs import SimulatedPacs
from dicomkit.sim.synthetic import SyntheticPatient, make_study
from dicomkit.transcode import UNCOMPRESSED
from tests.helpers import require

from .orthanc import OrthancProcess, free_port, orthanc_available

PORTAL_AE = "PORTAL"
SIM_AE = "SIMPACS"
DCMTK_TOOLS = ("echoscu", "findscu", "storescu", "getscu", "movescu")
# pynetdicom installs look-alike apps into the virtualenv: always call Debian's dcmtk by path.
DCMTK_DIR = Path("/usr/bin")
USER, PASSWORD = "portal", "s3cret-for-tests"
NHS_A = "9990000018"  # stored as PatientID (issuer NHS) in one study, as Other Patient ID in another


def need(ok: bool, what: str) -> None:
    require(ok, f"{what} is not installed")


def dcmtk(tool: str) -> str:
    path = DCMTK_DIR / tool
    need(os.access(path, os.X_OK), f"dcmtk ({path})")
    return str(path)


@dataclass
class Recorder:
    """Collects what a receiver's hooks are given (they run on association threads)."""

    arrivals: list[Arrival] = field(default_factory=list)
    quarantined: list[QuarantineRecord] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def arrival(self, item: Arrival) -> None:
        with self.lock:
            self.arrivals.append(item)

    def quarantine(self, item: QuarantineRecord) -> None:
        with self.lock:
            self.quarantined.append(item)

    def arrivals_for(self, sop_uid: str) -> list[Arrival]:
        with self.lock:
            return [a for a in self.arrivals if a.sop_instance_uid == sop_uid]


@dataclass(frozen=True)
class Studies:
    """Synthetic studies every interop test can use; loaded into Orthanc A and the simulated PACS."""

    ct_nhs_as_patient_id: list[Path]  # ISO_IR 100 name, NHS number as PatientID
    mr_nhs_as_other_id: list[Path]  # ISO_IR 192 name, NHS number in Other Patient IDs, 3 series
    compressed: dict[str, list[Path]]  # jpeg-baseline, jpeg2000, jpeg-ls, rle

    @staticmethod
    def uid(paths: list[Path]) -> str:
        return paths[0].parent.name

    @property
    def all_paths(self) -> list[Path]:
        return self.ct_nhs_as_patient_id + self.mr_nhs_as_other_id + [p for ps in self.compressed.values() for p in ps]


@pytest.fixture(scope="session")
def dicom_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dicom")


@pytest.fixture(scope="session")
def studies(dicom_tmp: Path) -> Studies:
    src = dicom_tmp / "source"
    siobhan = SyntheticPatient(NHS_A, "Ó Súilleabháin", "Siobhán", "19800214", "F", "RXH1000001", "RXH")
    llyr = SyntheticPatient(NHS_A, "Llŷr", "Dafydd", "19800214", "M", "RXH1000002", "RXH")
    ct = make_study(
        src, modality="CT", n_instances=4, patient=siobhan, study_date="20240110", charset="ISO_IR 100", seed=11
    )
    mr = make_study(
        src,
        modality="MR",
        n_instances=6,
        patient=llyr,
        nhs_store="other-ids",
        charset="ISO_IR 192",
        study_date="20230520",
        seed=12,
    )
    compressed = {
        name: make_study(src, modality="CT", n_instances=2, compress=name, rows=256, columns=256, seed=20 + i)
        for i, name in enumerate(["jpeg-baseline", "jpeg2000", "jpeg-ls", "rle"])
    }
    return Studies(ct, mr, compressed)


@pytest.fixture(scope="session")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="session")
def receiver_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def receiver(dicom_tmp: Path, receiver_port: int, recorder: Recorder) -> Iterator[StorageReceiver]:
    """The portal's receiver: C-MOVE destination for Orthanc and the simulated PACS."""
    rx = StorageReceiver(
        PORTAL_AE,
        receiver_port,
        dicom_tmp / "receiver",
        bind_address="127.0.0.1",
        on_arrival=recorder.arrival,
        on_quarantine=recorder.quarantine,
    ).start()
    yield rx
    rx.stop()


@pytest.fixture(scope="session")
def plain_receiver(dicom_tmp: Path) -> Iterator[StorageReceiver]:
    """A receiver that accepts only Explicit/Implicit VR Little Endian."""
    rx = StorageReceiver(
        "PLAINRX", free_port(), dicom_tmp / "plain-receiver", bind_address="127.0.0.1", transfer_syntaxes=UNCOMPRESSED
    ).start()
    yield rx
    rx.stop()


def _orthanc(workdir: Path, **kwargs: object) -> OrthancProcess:
    need(orthanc_available(), "Orthanc with the DICOMweb plugin")
    return OrthancProcess(workdir, **kwargs).start()  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def sim_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def orthanc_a(dicom_tmp: Path, receiver: StorageReceiver, sim_port: int, studies: Studies) -> Iterator[OrthancProcess]:
    """Source PACS: UTF-8 answers, DICOMweb with basic auth, holds the shared studies."""
    server = _orthanc(
        dicom_tmp / "orthanc-a",
        aet="ORTHANCA",
        modalities={"portal": (PORTAL_AE, "127.0.0.1", receiver.port), "sim": (SIM_AE, "127.0.0.1", sim_port)},
        users={USER: PASSWORD},
        extra={"DefaultEncoding": "Utf8"},
    )
    try:
        server.upload(studies.all_paths)
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def orthanc_b(dicom_tmp: Path, receiver: StorageReceiver) -> Iterator[OrthancProcess]:
    """Destination PACS: checks the called AE title, answers in its default Latin-1."""
    server = _orthanc(
        dicom_tmp / "orthanc-b",
        aet="ORTHANCB",
        modalities={"portal": (PORTAL_AE, "127.0.0.1", receiver.port)},
        check_called_aet=True,
    )
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def sim_pacs(dicom_tmp: Path, sim_port: int, receiver: StorageReceiver, studies: Studies) -> Iterator[SimulatedPacs]:
    pacs = SimulatedPacs(
        SIM_AE,
        sim_port,
        dicom_tmp / "sim-storage",
        move_destinations={PORTAL_AE: ("127.0.0.1", receiver.port)},
    ).start()
    client = client_for(sim_config(pacs), local_ae_title=PORTAL_AE)
    results = client.store(studies.all_paths)
    assert all(r.ok for r in results), [r.message for r in results if not r.ok]
    yield pacs
    pacs.stop()


@pytest.fixture(scope="session")
def plain_sim(dicom_tmp: Path) -> Iterator[SimulatedPacs]:
    """A simulated PACS that accepts only uncompressed transfer syntaxes, like an old archive."""
    pacs = SimulatedPacs("OLDPACS", free_port(), dicom_tmp / "old-pacs", transfer_syntaxes=UNCOMPRESSED).start()
    yield pacs
    pacs.stop()


def sim_config(pacs: SimulatedPacs, **overrides: object) -> GatewayConfig:
    values: dict[str, object] = {
        "ae_title": pacs.ae_title,
        "host": "127.0.0.1",
        "port": pacs.port,
        "label": f"simulated PACS {pacs.ae_title}",
        "acse_timeout": 5,
        "dimse_timeout": 20,
    }
    return GatewayConfig(**{**values, **overrides})  # type: ignore[arg-type]


def orthanc_config(server: OrthancProcess, **overrides: object) -> GatewayConfig:
    values: dict[str, object] = {
        "ae_title": server.aet,
        "host": "127.0.0.1",
        "port": server.dicom_port,
        "dicomweb_url": server.dicomweb_url,
        "label": f"Orthanc {server.aet}",
        "acse_timeout": 5,
        "dimse_timeout": 20,
    }
    if server.users:
        values["username"], values["password"] = server.auth  # type: ignore[misc]
    return GatewayConfig(**{**values, **overrides})  # type: ignore[arg-type]


GatewayFactory = Callable[..., GatewayClient]


@pytest.fixture(params=["orthanc", "sim"])
def dimse_gateway(
    request: pytest.FixtureRequest, receiver: StorageReceiver
) -> tuple[str, Callable[..., GatewayClient]]:
    """The same DIMSE client tests against real Orthanc and against the simulated PACS."""
    if request.param == "orthanc":
        server = request.getfixturevalue("orthanc_a")

        def make(**overrides: object) -> GatewayClient:
            cfg = orthanc_config(server, **overrides)
            return client_for(cfg, local_ae_title=PORTAL_AE, move_destination=receiver.move_destination)

    else:
        pacs = request.getfixturevalue("sim_pacs")

        def make(**overrides: object) -> GatewayClient:
            return client_for(
                sim_config(pacs, **overrides), local_ae_title=PORTAL_AE, move_destination=receiver.move_destination
            )

    return request.param, make
