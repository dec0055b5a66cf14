"""The operator commands, run the way an operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dicomkit import GatewayConfig, StudyQuery, client_for
from dicomkit.sim.synthetic import make_study

from .conftest import PORTAL_AE
from .orthanc import free_port

pytestmark = pytest.mark.interop

MANAGE = Path(__file__).resolve().parents[2] / "manage.py"


def test_run_sim_pacs_serves_a_folder_made_by_make_synthetic_study(tmp_path: Path) -> None:
    storage = tmp_path / "pacs"
    made = make_study(storage, modality="CT", n_instances=3, rows=64, columns=64, compress="rle")
    port = free_port()
    env = {**os.environ, "DEBUG": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            str(MANAGE),
            "run_sim_pacs",
            "--ae",
            "CLIPACS",
            "--port",
            str(port),
            "--storage",
            str(storage),
            "--move-destination",
            f"{PORTAL_AE}=127.0.0.1:{free_port()}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    try:
        cfg = GatewayConfig(ae_title="CLIPACS", host="127.0.0.1", port=port, acse_timeout=5)
        client = client_for(cfg, local_ae_title=PORTAL_AE)
        deadline = time.monotonic() + 30
        while not client.echo().ok:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "run_sim_pacs did not come up"
            time.sleep(0.2)
        (study,) = client.find_studies(StudyQuery(study_instance_uid=made[0].parent.name))
        assert study.instance_count == 3
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_run_sim_pacs_refuses_a_malformed_destination(tmp_path: Path) -> None:
    env = {**os.environ, "DEBUG": "1"}
    done = subprocess.run(
        [
            sys.executable,
            str(MANAGE),
            "run_sim_pacs",
            "--ae",
            "X",
            "--port",
            "1",
            "--storage",
            str(tmp_path),
            "--move-destination",
            "nonsense",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "must look like AE=host:port" in done.stderr
