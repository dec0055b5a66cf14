"""Peak RSS of the transfer engine moving a 100-instance and a 1,000-instance study (issue #4: within 50 MB).

    .venv/bin/python benchmarks/transfer_memory.py [--rows 256] [--pairs c-get/c-store,wado-rs/stow-rs]

For each size and retrieve/store pair, a fresh Python process (so its peak RSS is its own) starts two
Orthanc servers, uploads a synthetic CT study to A and runs `transfers.engine.run` in-process, as the
throughput benchmark does (SQLite, reconciliation off), then reports its peak RSS (ru_maxrss).
Its baseline (Django, pydicom, pynetdicom imported, the ledger's rows) is in that figure too.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve()
LIMIT_MB = 50.0


def child(instances: int, rows: int, pair: str) -> None:
    sys.argv = [str(HERE.parent / "transfer_throughput.py")]
    sys.path.insert(0, str(HERE.parent))
    import django
    import transfer_throughput as bench  # sets up its own throwaway database and spool

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from dicomkit.sim.synthetic import make_study
    from tests.dicom.orthanc import OrthancProcess, free_port

    call_command("migrate", verbosity=0)
    portal = (settings.DICOM_AE_TITLE, "127.0.0.1", free_port())
    b = OrthancProcess(bench.WORK / "b", aet="MEM_B", modalities={"portal": portal}).start()
    a = OrthancProcess(bench.WORK / "a", aet="MEM_A", modalities={"portal": portal}).start()
    try:
        paths = make_study(bench.WORK / "study", modality="CT", n_instances=instances, rows=rows, columns=rows, seed=9)
        a.upload(paths)
        for path in paths:  # A holds them now; the engine must not profit from our copies
            path.unlink()
        region = bench._region(a, b)
        bench._methods(*pair.split("/"))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        bench._engine(region, paths[0].parent.name)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        held = len(b.find("Instance", {"StudyInstanceUID": paths[0].parent.name}))
        assert held == instances, f"B holds {held} of {instances}"
        print(f"{pair:<18} {instances:>5} instances: peak RSS {peak:6.1f} MB (before the transfer {before:6.1f} MB)")
        print(json.dumps({"peak_rss_mb": peak, "before_mb": before}))  # for the parent, not shown
    finally:
        a.remove()
        b.remove()
        shutil.rmtree(bench.WORK, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--pairs", default="c-get/c-store,wado-rs/stow-rs")
    parser.add_argument("--child", nargs=2, metavar=("INSTANCES", "PAIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(int(args.child[0]), args.rows, args.child[1])
        return
    sys.path.insert(0, str(HERE.parent))
    from record import Run

    with Run(__file__, arguments=vars(args)) as run:
        print(f"CT {args.rows}², load {os.getloadavg()[0]:.1f}", flush=True)
        for pair in args.pairs.split(","):
            peaks = {}
            for instances in (100, 1000):
                command = [sys.executable, str(HERE), "--rows", str(args.rows), "--child", str(instances), pair]
                out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
                print("\n".join(line for line in out.splitlines() if not line.startswith("{")), flush=True)
                peaks[instances] = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
            growth = peaks[1000]["peak_rss_mb"] - peaks[100]["peak_rss_mb"]
            retrieve, store = pair.upper().split("/")
            run.figure(
                f"{pair.replace('/', '_').replace('-', '')}_growth_mb",
                growth,
                "MB",
                label=f"engine peak RSS, 1,000 vs 100 instances, {retrieve} → {store}",
                target=("<=", LIMIT_MB),
                peaks={str(n): peak for n, peak in peaks.items()},
            )


if __name__ == "__main__":
    main()
