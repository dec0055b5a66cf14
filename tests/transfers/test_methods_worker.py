"""Every retrieve/store pair end to end through one real Celery worker and the portal's real DICOM
receiver (for C-MOVE): API push → worker → the destination's own index lists every instance.

Two real Orthanc servers: (C-GET, C-MOVE, WADO-RS) x (C-STORE, STOW-RS). Two simulated PACS
(dicomkit/sim/pacs.py), which speak DIMSE only (no DICOMweb): (C-GET, C-MOVE) x C-STORE.
A 300-instance CT and a three-series MR go through every pair.
Servers, studies, the worker and the receiver are shared by the module to keep it quick.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from dicomkit import GatewayConfig, client_for
from dicomkit.sim.pacs import SimulatedPacs
from dicomkit.sim.synthetic import make_study
from directory.models import Gateway, SharingAgreement
from tests.dicom.orthanc import OrthancProcess, free_port
from transfers.models import InstanceState

from .peers import Study, orthanc_gateway, sop_uids_held
from .test_worker import finished, push, wait_for
from .worker import BASE_DIR, Worker, isolated_broker

pytestmark = [pytest.mark.interop, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def big_ct(tmp_path_factory: pytest.TempPathFactory) -> Study:
    """300 CT slices, 128 x 128 (about 10 MB): the many-instance case through every pair without minutes of
    copying (MB/s is benchmarks/transfer_throughput.py's business, with full-size slices)."""
    paths = make_study(tmp_path_factory.mktemp("ct300"), modality="CT", n_instances=300, rows=128, columns=128, seed=81)
    return Study(paths[0].parent.name, paths)


@pytest.fixture(scope="module")
def mr(tmp_path_factory: pytest.TempPathFactory) -> Study:
    paths = make_study(tmp_path_factory.mktemp("mr"), modality="MR", n_instances=24, rows=128, columns=128, seed=82)
    return Study(paths[0].parent.name, paths)


@pytest.fixture(scope="module")
def spool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("methods-spool")


@pytest.fixture(scope="module")
def worker(django_db_setup, django_db_blocker, spool: Path, tmp_path_factory) -> Iterator[Worker]:
    with isolated_broker(tmp_path_factory.mktemp("methods-broker")) as options:
        w = Worker(tmp_path_factory.mktemp("methods-worker"), options, env_extra={"SPOOL_DIR": str(spool)})
        w.start()
        try:
            yield w
        finally:
            w.stop()


@pytest.fixture(scope="module")
def receiver(worker: Worker, spool: Path, pacs_pair) -> Iterator[int]:
    """`manage.py run_dicom_receiver` as the demo runs it, sharing SPOOL_DIR with the worker, on the port
    Orthanc A knows as the portal's C-MOVE destination."""
    port = pacs_pair[0].modalities["portal"][2]
    log = (spool / "receiver.log").open("wb")
    command = [sys.executable, "manage.py", "run_dicom_receiver", "--port", str(port), "--bind", "127.0.0.1"]
    proc = subprocess.Popen(command, cwd=BASE_DIR, env=worker.env(), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while "listening on" not in (spool / "receiver.log").read_text(errors="replace"):
        assert proc.poll() is None and time.monotonic() < deadline, (spool / "receiver.log").read_text()
        time.sleep(0.1)
    yield port
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def orthancs(pacs_pair, big_ct: Study, mr: Study) -> tuple[OrthancProcess, OrthancProcess]:
    pacs_pair[0].upload(big_ct.paths + mr.paths)
    return pacs_pair


@pytest.fixture(scope="module")
def sim_a(tmp_path_factory, receiver: int, big_ct: Study, mr: Study) -> Iterator[SimulatedPacs]:
    root = tmp_path_factory.mktemp("sim-a")
    for study in (big_ct, mr):
        shutil.copytree(study.paths[0].parent, root / study.uid)
    portal = {settings.DICOM_AE_TITLE: ("127.0.0.1", receiver)}
    a = SimulatedPacs("SIM_A", free_port(), root, move_destinations=portal).start()
    yield a
    a.stop()


@pytest.fixture
def sim_b(tmp_path: Path) -> Iterator[SimulatedPacs]:
    """A fresh, empty destination for each test (the simulated PACS has no delete)."""
    b = SimulatedPacs("SIM_B", free_port(), tmp_path / "sim-b").start()
    yield b
    b.stop()


@pytest.fixture
def agreement_ab(trust_a, trust_b):
    return SharingAgreement.objects.create(trust_a=trust_a, trust_b=trust_b)


def sim_gateway(trust, pacs: SimulatedPacs, **overrides: object) -> Gateway:
    values = {"name": pacs.ae_title, "ae_title": pacs.ae_title, "host": "127.0.0.1", "port": pacs.port}
    return Gateway.objects.create(trust=trust, **{**values, **overrides})


def sim_held(pacs: SimulatedPacs, study_uid: str) -> set[str]:
    """What the simulated PACS's own index answers to a C-FIND for the study's instances."""
    config = GatewayConfig(ae_title=pacs.ae_title, host="127.0.0.1", port=pacs.port, label=pacs.ae_title)
    return {i.sop_instance_uid for i in client_for(config, local_ae_title="CHECKER").find_instances(study_uid)}


def move(alice, worker: Worker, study: Study) -> None:
    transfer_id = push(alice, study.uid, priority="urgent")
    transfer = wait_for(lambda: finished(transfer_id), worker, timeout=240)
    assert transfer.status == "completed", (transfer.errors, worker.log()[-4000:])
    assert set(transfer.instances.values_list("state", flat=True)) == {InstanceState.STORED}
    assert transfer.instances.count() == len(study.paths)


ORTHANC_PAIRS = [(r, s) for r in ("c-get", "c-move", "wado-rs") for s in ("c-store", "stow-rs")]


@pytest.mark.parametrize(("retrieve", "store"), ORTHANC_PAIRS)
def test_orthanc_to_orthanc(
    worker, receiver, orthancs, big_ct, mr, trust_a, trust_b, agreement_ab, alice, retrieve, store
):
    a, b = orthancs
    orthanc_gateway(trust_a, a, retrieve_method=retrieve, dicomweb_url=a.dicomweb_url)
    orthanc_gateway(trust_b, b, store_method=store, dicomweb_url=b.dicomweb_url)
    for study in (mr, big_ct):
        b.delete_study(study.uid)

        move(alice, worker, study)

        held = sop_uids_held(b, study.uid)
        assert len(held) == len(study.paths) and set(held) == study.sop_uids, f"{study.uid} via {retrieve}/{store}"


@pytest.mark.parametrize("retrieve", ["c-get", "c-move"])
def test_simulated_pacs_to_simulated_pacs(
    worker, sim_a, sim_b, big_ct, mr, trust_a, trust_b, agreement_ab, alice, retrieve
):
    sim_gateway(trust_a, sim_a, retrieve_method=retrieve)
    sim_gateway(trust_b, sim_b)
    for study in (mr, big_ct):
        move(alice, worker, study)

        assert sim_held(sim_b, study.uid) == study.sop_uids, f"{study.uid} via {retrieve}/c-store"


def test_a_damaged_instance_moved_by_c_move_fails_with_the_receivers_reason(
    worker, receiver, pacs_pair, damaged_study, trust_a, trust_b, agreement_ab, alice
):
    """The portal's receiver, not the worker, refuses a damaged C-MOVE arrival: the transfer still names
    the reason at once, instead of waiting passes for an instance that will never come."""
    a, b = pacs_pair
    study, bad_uid = damaged_study
    orthanc_gateway(trust_a, a, retrieve_method="c-move")
    orthanc_gateway(trust_b, b)
    b.delete_study(study.uid)

    transfer_id = push(alice, study.uid, priority="urgent")
    transfer = wait_for(lambda: finished(transfer_id), worker, timeout=120)

    assert transfer.status == "completed_with_errors", (transfer.errors, worker.log()[-4000:])
    assert transfer.attempts == 1  # no pass spent waiting for it
    bad = transfer.instances.get(sop_instance_uid=bad_uid)
    assert bad.state == InstanceState.FAILED and "truncated" in bad.last_error, bad.last_error
    assert sorted(sop_uids_held(b, study.uid)) == sorted(study.sop_uids)
