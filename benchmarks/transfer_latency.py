"""How long a one-instance study takes from the API call to `completed`, through a real Celery worker.

    REDIS_URL=redis://127.0.0.1:6379/4 .venv/bin/python benchmarks/transfer_latency.py [--runs 10]

Starts two Orthanc servers (A holds a one-instance CT study), a real `celery -A portal worker` process
(prefork, 2 children) on a throwaway SQLite database, then for each run empties B, POSTs
`/api/v1/transfers/` and polls the database every 5 ms until the transfer is `completed`.

Prints, per run and as a median: API call → completed, and its parts: API call → a worker claimed it
(broker and task start), claim → completed (the engine: plan C-FIND, C-GET, C-STORE, verify C-FIND,
ledger, audit). With Redis the worker is woken at once; without REDIS_URL kombu's filesystem broker
(the demo's) polls its folder, adding up to its polling interval.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORK = Path(tempfile.mkdtemp(prefix="transfer-latency-"))
os.environ["DATABASE_URL"] = f"sqlite:///{WORK / 'bench.sqlite3'}"
os.environ["SPOOL_DIR"] = str(WORK / "spool")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")  # no mail in the figures
os.environ["ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"

from record import Run  # noqa: E402 - benchmarks/ is on the path as the script's own folder

TARGET_MS = 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with Run(__file__, arguments=vars(args)) as run:
        measure(args, run)


def measure(args: argparse.Namespace, run: Run) -> None:

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from dicomkit.sim.synthetic import make_study
    from tests.dicom.orthanc import OrthancProcess, free_port, orthanc_available
    from tests.transfers.worker import Worker, isolated_broker
    from transfers.models import FINISHED, Transfer

    if not orthanc_available():
        sys.exit("Orthanc with the DICOMweb plugin is not installed.")
    call_command("migrate", verbosity=0)
    portal = (settings.DICOM_AE_TITLE, "127.0.0.1", free_port())
    a = OrthancProcess(WORK / "a", aet="LAT_A", modalities={"portal": portal}).start()
    b = OrthancProcess(WORK / "b", aet="LAT_B", modalities={"portal": portal}).start()
    broker = "Redis" if settings.CELERY_BROKER_URL.startswith("redis") else "filesystem (polling)"
    try:
        one = make_study(WORK / "one", modality="CT", n_instances=1, seed=6)
        a.upload(one)
        study_uid = one[0].parent.name
        user = _region(a, b)
        api = APIClient()
        api.force_authenticate(user)
        body = {
            "source_trust": "RL1",
            "destination_trust": "RL2",
            "study_instance_uids": [study_uid],
            "priority": "urgent",
            "reason": "benchmark",
        }
        with isolated_broker(WORK / "broker") as options:
            worker = Worker(WORK / "worker", options, env_extra={"LOG_LEVEL": "WARNING"}).start()
            try:
                totals, queueing, engine = [], [], []
                for n in range(args.runs + 1):
                    b.delete_study(study_uid)
                    started = time.perf_counter()
                    response = api.post("/api/v1/transfers/", body, format="json")
                    assert response.status_code == 201, response.content
                    transfer_id = response.json()["id"]
                    while True:
                        transfer = Transfer.objects.get(pk=transfer_id)
                        if transfer.status in FINISHED:
                            break
                        if time.perf_counter() - started > 60:
                            sys.exit(f"no result after 60 s:\n{worker.log()[-3000:]}")
                        time.sleep(0.005)
                    total = time.perf_counter() - started
                    if transfer.status != "completed":
                        sys.exit(f"transfer ended {transfer.status}: {transfer.errors}")
                    to_claim = (transfer.started_at - transfer.created_at).total_seconds()
                    in_engine = (transfer.completed_at - transfer.started_at).total_seconds()
                    label = "warm-up" if n == 0 else f"run {n}"
                    print(
                        f"{label:<8} API → completed {total * 1000:6.0f} ms   "
                        f"(API → claimed {to_claim * 1000:5.0f} ms, engine {in_engine * 1000:5.0f} ms)",
                        flush=True,
                    )
                    if n:  # the first run pays for the worker's first connections and imports
                        totals.append(total)
                        queueing.append(to_claim)
                        engine.append(in_engine)
            finally:
                worker.stop()
        print(
            f"\nbroker: {broker}; one-instance study, API call → completed: median "
            f"{statistics.median(totals) * 1000:.0f} ms (min {min(totals) * 1000:.0f}, max "
            f"{max(totals) * 1000:.0f}); API → claimed {statistics.median(queueing) * 1000:.0f} ms, "
            f"engine {statistics.median(engine) * 1000:.0f} ms (medians of {len(totals)} runs)"
        )
        run.figure(
            "api_to_completed_ms",
            statistics.median(totals) * 1000,
            "ms",
            label=f"one-instance study, API call → completed, real worker, {broker} broker, median",
            target=("<", TARGET_MS),
            min=min(totals) * 1000,
            max=max(totals) * 1000,
            runs=len(totals),
        )
        run.figure("api_to_claimed_ms", statistics.median(queueing) * 1000, "ms")
        run.figure("engine_ms", statistics.median(engine) * 1000, "ms")
    finally:
        a.remove()
        b.remove()


def _region(a, b):
    from bench_region import two_trusts

    return two_trusts(a, b, codes=("RL1", "RL2"))[2]


if __name__ == "__main__":
    main()
