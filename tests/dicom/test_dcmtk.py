"""dcmtk as an independent peer: its tools must work with our simulated PACS and our receiver."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread

from dicomkit import StorageReceiver, StudyQuery, client_for
from dicomkit.sim.pacs import SimulatedPacs
from dicomkit.sim.synthetic import make_study
from dicomkit.spool import dataset_sha256

from .conftest import NHS_A, PORTAL_AE, Studies, dcmtk, sim_config

pytestmark = pytest.mark.interop


def run(tool: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TCP_NODELAY": "1"}
    done = subprocess.run(
        [dcmtk(tool), *args], capture_output=True, text=True, timeout=60, env=env, cwd=cwd, check=False
    )
    assert done.returncode == 0, f"{tool} failed: {done.stdout}\n{done.stderr}"
    return done


def test_echoscu_reaches_the_simulated_pacs(sim_pacs: SimulatedPacs) -> None:
    run("echoscu", "-aet", "DCMTK", "-aec", sim_pacs.ae_title, "127.0.0.1", str(sim_pacs.port))


def test_findscu_finds_by_nhs_number_in_the_simulated_pacs(
    sim_pacs: SimulatedPacs, studies: Studies, tmp_path: Path
) -> None:
    run(
        "findscu",
        "-S",
        "-aet",
        "DCMTK",
        "-aec",
        sim_pacs.ae_title,
        "-X",
        "-od",
        str(tmp_path),
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        "(0010,1000)=" + NHS_A,
        "-k",
        "StudyInstanceUID",
        "-k",
        "PatientName",
        "127.0.0.1",
        str(sim_pacs.port),
    )
    answers = [dcmread(p) for p in tmp_path.glob("rsp*.dcm")]
    assert [str(a.StudyInstanceUID) for a in answers] == [studies.uid(studies.mr_nhs_as_other_id)]
    assert str(answers[0].PatientName) == "Llŷr^Dafydd"


def test_storescu_stores_into_the_simulated_pacs(sim_pacs: SimulatedPacs, tmp_path: Path) -> None:
    paths = make_study(tmp_path, modality="CT", n_instances=3, rows=64, columns=64, compress="jpeg2000")
    # -xv: also propose JPEG 2000 lossless (storescu proposes only uncompressed by default).
    run(
        "storescu", "-xv", "-aet", "DCMTK", "-aec", sim_pacs.ae_title, "127.0.0.1", str(sim_pacs.port), *map(str, paths)
    )
    client = client_for(sim_config(sim_pacs), local_ae_title=PORTAL_AE)
    (study,) = client.find_studies(StudyQuery(study_instance_uid=paths[0].parent.name))
    assert study.instance_count == 3


def test_getscu_retrieves_from_the_simulated_pacs(sim_pacs: SimulatedPacs, studies: Studies, tmp_path: Path) -> None:
    run(
        "getscu",
        "-S",
        "-aet",
        "DCMTK",
        "-aec",
        sim_pacs.ae_title,
        "-od",
        str(tmp_path),
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={studies.uid(studies.ct_nhs_as_patient_id)}",
        "127.0.0.1",
        str(sim_pacs.port),
    )
    assert len(list(tmp_path.iterdir())) == len(studies.ct_nhs_as_patient_id)


def test_movescu_moves_from_the_simulated_pacs_into_the_receiver(
    sim_pacs: SimulatedPacs, receiver: StorageReceiver, studies: Studies
) -> None:
    run(
        "movescu",
        "-S",
        "-aet",
        "DCMTK",
        "-aec",
        sim_pacs.ae_title,
        "-aem",
        PORTAL_AE,
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={studies.uid(studies.compressed['rle'])}",
        "127.0.0.1",
        str(sim_pacs.port),
    )
    for path in studies.compressed["rle"]:
        (landed,) = receiver.incoming_dir.rglob(path.name)
        assert dataset_sha256(landed) == dataset_sha256(path)


def test_echoscu_reaches_the_receiver(receiver: StorageReceiver) -> None:
    run("echoscu", "-aet", "DCMTK", "-aec", receiver.ae_title, "127.0.0.1", str(receiver.port))


def test_storescu_stores_into_the_receiver(receiver: StorageReceiver, tmp_path: Path) -> None:
    paths = make_study(tmp_path, modality="MR", n_instances=3, rows=64, columns=64, compress="jpeg-ls")
    run(
        "storescu", "-xt", "-aet", "DCMTK", "-aec", receiver.ae_title, "127.0.0.1", str(receiver.port), *map(str, paths)
    )
    for path in paths:
        (landed,) = receiver.incoming_dir.rglob(path.name)
        assert dataset_sha256(landed) == dataset_sha256(path)
        assert dcmread(landed).file_meta.SourceApplicationEntityTitle == "DCMTK"
