"""Transfer fixtures: gateways the engine can use (C-GET source), and an outsider (carol, trust C)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connections
from pydicom import dcmread
from pydicom.uid import generate_uid

from accounts.models import User
from accounts.roles import Role
from dicomkit.sim.synthetic import make_study
from directory.models import Gateway, Trust
from tests.dicom.orthanc import OrthancProcess
from tests.helpers import grant, make_user

from .peers import Study, start_orthanc
from .worker import Worker, isolated_broker

WORKER_FIXTURES = ("transfer_worker", "worker_broker")  # tests with a worker process of their own


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A Celery worker process must open the test database too: SQLite's default in-memory test database
    is invisible to other processes, so when a worker test is selected the test database is a file
    (pytest-django still adds its per-xdist-worker suffix and deletes the file at the end)."""
    if not any(set(WORKER_FIXTURES) & set(getattr(item, "fixturenames", ())) for item in items):
        return
    db = connections["default"].settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3" and not db.setdefault("TEST", {}).get("NAME"):
        db["TEST"]["NAME"] = str(Path(tempfile.gettempdir()) / f"portal-test-transfers-{os.getpid()}.sqlite3")


STUDY = "1.2.826.0.1.3680043.8.498.10"
OTHER_STUDY = "1.2.826.0.1.3680043.8.498.11"


@pytest.fixture
def cget_gateway_a(trust_a) -> Gateway:
    return Gateway.objects.create(
        trust=trust_a, name="Edge", ae_title="ALPHA_EDGE", host="127.0.0.1", port=4250, retrieve_method="c-get"
    )


@pytest.fixture
def cget_gateway_b(trust_b) -> Gateway:
    return Gateway.objects.create(
        trust=trust_b, name="Edge", ae_title="BETA_EDGE", host="127.0.0.1", port=4251, retrieve_method="c-get"
    )


@pytest.fixture
def trust_c(db) -> Trust:
    return Trust.objects.create(ods_code="RCC", name="Gamma Community Hospital")


@pytest.fixture
def carol(trust_c) -> User:
    """A clinician of a trust with no part in A and B's transfers: must see none of them."""
    return grant(make_user("carol@c.example"), trust_c, Role.CLINICIAN)


@pytest.fixture(scope="session")
def pacs_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OrthancProcess, OrthancProcess]]:
    root = tmp_path_factory.mktemp("transfer-peers")
    a = start_orthanc(root / "a", "PACS_A")
    try:
        b = start_orthanc(root / "b", "PACS_B")
    except BaseException:
        a.remove()
        raise
    yield a, b
    a.remove()
    b.remove()


@pytest.fixture(scope="session")
def ct_study(tmp_path_factory: pytest.TempPathFactory, pacs_pair) -> Study:
    paths = make_study(tmp_path_factory.mktemp("transfer-study"), modality="CT", n_instances=24, seed=71)
    pacs_pair[0].upload(paths)
    return Study(paths[0].parent.name, paths)


@pytest.fixture
def transfer_worker(transactional_db, tmp_path: Path) -> Iterator[Worker]:
    """A real `celery -A portal worker` process on the test database and a broker shared with this process."""
    with isolated_broker(tmp_path / "broker") as options:
        worker = Worker(tmp_path / "worker", options).start()
        try:
            yield worker
        finally:
            worker.stop()


@pytest.fixture(scope="session")
def big_study(tmp_path_factory: pytest.TempPathFactory, pacs_pair) -> Study:
    """Large enough (about 80 MB) that a worker can be killed in the middle of moving it."""
    paths = make_study(tmp_path_factory.mktemp("transfer-big-study"), modality="CT", n_instances=160, seed=72)
    pacs_pair[0].upload(paths)
    return Study(paths[0].parent.name, paths)


@pytest.fixture
def trust_b(trust_b: Trust) -> Trust:
    """The engine's own tests move studies as they are: reconciliation on arrival (on by default, and
    holding arrivals of patients B does not know) has its own tests in tests/reconciliation/."""
    trust_b.reconcile_patient_id = trust_b.prefix_accession = trust_b.prefix_study_description = False
    trust_b.save()
    return trust_b


def short_pixel_data(source: Path, out: Path, cut: int = 1000) -> Path:
    """A well-formed file whose Pixel Data is `cut` bytes shorter than Rows x Columns x Bits needs (a new
    SOP Instance UID): what a cut-short image looks like once a PACS has re-encoded it."""
    ds = dcmread(source)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PixelData = ds.PixelData[:-cut]
    ds.save_as(out, enforce_file_format=True)
    return out


@pytest.fixture(scope="session")
def damaged_study(tmp_path_factory: pytest.TempPathFactory, pacs_pair) -> tuple[Study, str]:
    """Six good CT instances and a seventh, in the same study, with its Pixel Data cut short."""
    folder = tmp_path_factory.mktemp("transfer-damaged-study")
    paths = make_study(folder, modality="CT", n_instances=6, seed=73)
    bad = short_pixel_data(paths[0], folder / "truncated.dcm")
    pacs_pair[0].upload([*paths, bad])  # Orthanc accepts it: it does not decode pixels on receipt
    return Study(paths[0].parent.name, paths), str(dcmread(bad, stop_before_pixels=True).SOPInstanceUID)
