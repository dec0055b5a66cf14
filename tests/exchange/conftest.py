"""Real DICOM peers for the exchange tests: a simulated PACS holding trust A's studies, and Orthanc.

Patients: Siobhán (NHS_SIOBHAN) has a CT at trust A with the NHS number as PatientID; Rhys
(NHS_RHYS) an MR with his local MRN as PatientID and the NHS number among the Other Patient IDs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dicomkit.sim.pacs import SimulatedPacs
from dicomkit.sim.synthetic import SyntheticPatient, make_study
from directory.models import Gateway, Trust
from tests.dicom.orthanc import DICOMWEB_PLUGIN, ORTHANC_BIN, OrthancProcess, free_port
from tests.helpers import require_tool

NHS_SIOBHAN = "9990000018"
NHS_RHYS = "9990000026"
RHYS_MRN = "RAA1234567"
SIM_AE = "ALPHA_SIM"


@dataclass(frozen=True)
class PacsStudies:
    ct_uid: str
    mr_uid: str
    paths: list[Path]


@pytest.fixture(scope="session")
def pacs_studies(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, PacsStudies]:
    storage = tmp_path_factory.mktemp("alpha-pacs")
    siobhan = SyntheticPatient(NHS_SIOBHAN, "Ó Súilleabháin", "Siobhán", "19800214", "F", "", "RAA_MRN")
    rhys = SyntheticPatient(NHS_RHYS, "Davies", "Rhys", "19541103", "M", RHYS_MRN, "RAA_MRN")
    ct = make_study(
        storage, modality="CT", n_instances=4, rows=64, columns=64, patient=siobhan, study_date="20240110", seed=1
    )
    mr = make_study(
        storage,
        modality="MR",
        n_instances=5,
        rows=64,
        columns=64,
        patient=rhys,
        nhs_store="other-ids",
        charset="ISO_IR 192",
        study_date="20230520",
        accession_number="ACC0001",
        seed=2,
    )
    return storage, PacsStudies(ct[0].parent.name, mr[0].parent.name, ct + mr)


@pytest.fixture(scope="session")
def alpha_pacs(pacs_studies: tuple[Path, PacsStudies]) -> Iterator[SimulatedPacs]:
    """Trust A's PACS: a real Storage/Query/Retrieve SCP on a loopback port."""
    storage, _ = pacs_studies
    pacs = SimulatedPacs(SIM_AE, free_port(), storage).start()
    yield pacs
    pacs.stop()


@pytest.fixture(scope="session")
def alpha_orthanc(tmp_path_factory: pytest.TempPathFactory, pacs_studies) -> Iterator[OrthancProcess]:
    require_tool(ORTHANC_BIN, "Orthanc")
    require_tool(DICOMWEB_PLUGIN, "Orthanc's DICOMweb plugin")
    server = OrthancProcess(tmp_path_factory.mktemp("alpha-orthanc"), aet="ALPHA_ORTHANC").start()
    try:
        server.upload(pacs_studies[1].paths)
        yield server
    finally:
        server.remove()


@pytest.fixture
def studies(pacs_studies) -> PacsStudies:
    return pacs_studies[1]


@pytest.fixture
def sim_gateway(trust_a: Trust, alpha_pacs: SimulatedPacs) -> Gateway:
    return Gateway.objects.create(
        trust=trust_a, name="Main PACS", ae_title=alpha_pacs.ae_title, host="127.0.0.1", port=alpha_pacs.port
    )


@pytest.fixture
def dead_gateway(trust_a: Trust) -> Gateway:
    """Nothing listens on its port: connection refused at once."""
    return Gateway.objects.create(
        trust=trust_a, name="Old PACS", ae_title="OLD_PACS", host="127.0.0.1", port=free_port()
    )


@pytest.fixture
def orthanc_gateway(trust_a: Trust, alpha_orthanc: OrthancProcess) -> Gateway:
    """A DICOMweb-only gateway: QIDO-RS searches, and its health check is a QIDO-RS ping."""
    return Gateway.objects.create(
        trust=trust_a,
        name="Orthanc DICOMweb",
        dicomweb_url=alpha_orthanc.dicomweb_url,
        query_method=Gateway.QueryMethod.QIDO_RS,
        retrieve_method=Gateway.RetrieveMethod.WADO_RS,
        store_method=Gateway.StoreMethod.STOW_RS,
    )
