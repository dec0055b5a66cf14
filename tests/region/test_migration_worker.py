"""A migration between two real Orthancs through real worker processes, the worker killed (kill -9, whole
process group) twice midway: it resumes from the studies it saved and ends with nothing missing or mismatched."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from audit.context import SYSTEM
from dicomkit.sim.synthetic import make_study
from region import migration
from region.models import MigrationJob, MigrationStudy
from tests.dicom.orthanc import OrthancProcess
from tests.transfers.peers import orthanc_gateway, start_orthanc
from tests.transfers.worker import Worker, isolated_broker

pytestmark = [pytest.mark.interop, pytest.mark.django_db(transaction=True)]

STUDIES = 30
LEASE = 6
WORKER_ENV = {"MIGRATION_LEASE_SECONDS": str(LEASE), "MIGRATION_SLICE_SECONDS": "4", "MIGRATION_YIELD_SECONDS": "1"}


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OrthancProcess, OrthancProcess, int]]:
    """The old archive with 30 mixed studies (CT, MR, CR), and an empty new one."""
    root = tmp_path_factory.mktemp("migration-peers")
    old = start_orthanc(root / "old", "OLD_ARCHIVE")
    new = start_orthanc(root / "new", "NEW_ARCHIVE")
    instances = 0
    try:
        for n in range(STUDIES):
            modality, count = [("CT", 4), ("MR", 3), ("CR", 1)][n % 3]
            paths = make_study(
                root / "data",
                modality=modality,
                n_instances=count,
                rows=128,
                columns=128,
                seed=500 + n,
                study_date=f"2025{1 + n % 12:02d}15",
            )
            old.upload(paths)
            instances += len(paths)
        yield old, new, instances
    finally:
        old.remove()
        new.remove()


def wait_until(predicate, what: str, worker: Worker | None = None, timeout: float = 240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; worker log:\n{worker.log()[-5000:] if worker else ''}")


def copied(job_id: int) -> int:
    return MigrationStudy.objects.filter(job_id=job_id).exclude(state="pending").count()


def test_a_migration_killed_twice_midway_resumes_and_ends_with_nothing_missing(
    archives, trust_a, rita, settings, tmp_path: Path
):
    settings.MIGRATION_LEASE_SECONDS = LEASE
    old, new, instances = archives
    source = orthanc_gateway(trust_a, old, name="Old archive")
    destination = orthanc_gateway(trust_a, new, name="New archive")
    with isolated_broker(tmp_path / "broker") as options:

        def start() -> Worker:
            return Worker(tmp_path / "worker", options, env_extra=WORKER_ENV, concurrency=1, queues="bulk").start()

        worker = start()
        try:
            job = migration.migration_create(
                name="Old archive to new",
                source=source,
                destination=destination,
                max_instances_per_second=15,
                user=rita,
                actor=SYSTEM,
            )
            for threshold in (STUDIES // 3, 2 * STUDIES // 3):
                wait_until(lambda t=threshold: copied(job.pk) >= t, f"{threshold} studies copied", worker)
                worker.kill()  # kill -9 of the main process and its pool child, mid-study
                before = copied(job.pk)
                time.sleep(2 * LEASE + 1)  # the dead worker's lease and gateway slots run out
                worker = start()
                # The broker gives the dead worker's message back, or the beat's sweeper sends the silent job
                # again (whichever comes second finds the lease taken and stands aside).
                migration.sweep()
                wait_until(lambda b=before: copied(job.pk) > b, "progress after the restart", worker)
            done = wait_until(
                lambda: MigrationJob.objects.filter(pk=job.pk, status="completed").first(), "the end", worker
            )
        finally:
            worker.stop()

    assert done.report["studies"] == STUDIES
    assert done.report["ok"] == STUDIES
    assert (done.report["missing"], done.report["count_mismatch"], done.report["hash_mismatch"]) == (0, 0, 0)
    assert done.report["extra"] == 0
    assert done.passes >= 3
    held = {s["MainDicomTags"]["SOPInstanceUID"] for s in new.find("Instance", {}, expand=True)}
    assert len(held) == instances
