"""Peak memory of a retrieve does not grow with study size.

Builds a 100- and a 1,000-instance study (64x64 CT), loads them into a real Orthanc by C-STORE,
then retrieves each through C-GET, C-MOVE (into the portal's receiver, running in the same process)
and WADO-RS, every run in a fresh subprocess, and prints peak RSS (ru_maxrss) per method and size.
The 1,000-instance run may use at most 50 MB more than the 100-instance run; exit status 1 if not.

    .venv/bin/python benchmarks/retrieve_memory.py [--sizes 100 1000] [--limit-mb 50]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Only what a retrieving worker needs is imported at the top, so the child's baseline is honest;
# the study builder (numpy, Pillow) and the Orthanc launcher are imported by the parent alone.
from dicomkit import GatewayConfig, StorageReceiver, client_for  # noqa: E402

if TYPE_CHECKING:
    from record import Run

    from tests.dicom.orthanc import OrthancProcess

METHODS = ("c-get", "c-move", "wado-rs")
PORTAL_AE = "PORTAL"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def proc_status_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak of this process image) from /proc, as a cross-check."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child(args: argparse.Namespace) -> None:
    """One retrieve; every file is deleted once handed over, as a forwarding worker would."""
    baseline = peak_rss_mb()
    cfg = GatewayConfig(
        ae_title=args.aet,
        host="127.0.0.1",
        port=args.dicom_port,
        dicomweb_url=args.dicomweb_url,
        retrieve_method=args.method,
        dimse_timeout=120,
    )
    receiver = None
    if args.method == "c-move":
        receiver = StorageReceiver(
            PORTAL_AE, args.receiver_port, Path(args.work) / "receiver", bind_address="127.0.0.1"
        )
        receiver.start()
    started = time.monotonic()
    count = size = 0
    try:
        client = client_for(
            cfg, local_ae_title=PORTAL_AE, move_destination=receiver.move_destination if receiver else None
        )
        retrieval = client.retrieve(args.study, spool_dir=Path(args.work) / "spool")
        for instance in retrieval:
            count += 1
            size += instance.size
            instance.path.unlink()
    finally:
        if receiver is not None:
            receiver.stop()
    print(
        json.dumps(
            {
                "method": args.method,
                "instances": count,
                "megabytes": round(size / 1e6, 1),
                "seconds": round(time.monotonic() - started, 2),
                "baseline_rss_mb": round(baseline, 1),
                "peak_rss_mb": round(peak_rss_mb(), 1),
                "final_rss_mb": round(proc_status_mb("VmRSS"), 1),
                "vmhwm_mb": round(proc_status_mb("VmHWM"), 1),
                "ok": retrieval.summary.ok,
            }
        )
    )


# Linux carries a process's peak RSS across exec, and a child spawned straight from this (large)
# parent would start with our peak as its ru_maxrss. A tiny launcher process in between gives the
# measured child a clean slate, so its ru_maxrss is its own.
LAUNCHER = "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:]).returncode)"


def run_child(method: str, study: str, orthanc: OrthancProcess, receiver_port: int, work: Path) -> dict[str, object]:
    command = [
        sys.executable, "-c", LAUNCHER, sys.executable, __file__, "--child", "--method", method, "--study", study,
        "--aet", orthanc.aet, "--dicom-port", str(orthanc.dicom_port), "--dicomweb-url", orthanc.dicomweb_url,
        "--receiver-port", str(receiver_port), "--work", str(work),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{method} retrieve failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--method", choices=METHODS)
    parser.add_argument("--study")
    parser.add_argument("--aet")
    parser.add_argument("--dicom-port", type=int)
    parser.add_argument("--dicomweb-url")
    parser.add_argument("--receiver-port", type=int)
    parser.add_argument("--work")
    parser.add_argument("--sizes", type=int, nargs=2, default=[100, 1000])
    parser.add_argument("--limit-mb", type=float, default=50.0)
    parser.add_argument("--pixels", type=int, default=64, help="rows and columns of each instance")
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0
    from record import Run

    with Run(__file__, arguments={k: v for k, v in vars(args).items() if k in ("sizes", "limit_mb", "pixels")}) as run:
        return measure(args, run)


def measure(args: argparse.Namespace, run: Run) -> int:
    from dicomkit.sim.synthetic import SyntheticPatient, make_study
    from tests.dicom.orthanc import OrthancProcess, free_port, orthanc_available

    if not orthanc_available():
        print("Orthanc with the DICOMweb plugin is not installed; nothing to measure.", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="retrieve-memory-") as tmp:
        work = Path(tmp)
        receiver_port = free_port()
        orthanc = OrthancProcess(
            work / "orthanc", aet="BENCHPACS", modalities={"portal": (PORTAL_AE, "127.0.0.1", receiver_port)}
        ).start()
        try:
            studies = {}
            for n in args.sizes:
                paths = make_study(
                    work / "source", modality="CT", n_instances=n, rows=args.pixels, columns=args.pixels, seed=n,
                    patient=SyntheticPatient.random(), study_date="20240101",
                )  # fmt: skip
                cfg = GatewayConfig(ae_title=orthanc.aet, host="127.0.0.1", port=orthanc.dicom_port)
                started = time.monotonic()
                results = client_for(cfg, local_ae_title=PORTAL_AE).store(paths)
                elapsed = time.monotonic() - started
                assert all(r.ok for r in results), [r.message for r in results if not r.ok][:3]
                print(f"loaded {n} instances into Orthanc by C-STORE in {elapsed:.1f} s ({n / elapsed:.0f}/s)")
                studies[n] = paths[0].parent.name
            rows = []
            for method in METHODS:
                figures = {
                    n: run_child(method, studies[n], orthanc, receiver_port, work / f"{method}-{n}") for n in studies
                }
                rows.append((method, figures))
        finally:
            orthanc.remove()

    small, large = args.sizes
    print()
    header = f"{'method':<8} {'n':>6} {'MB moved':>9} {'seconds':>8} {'baseline MB':>12} {'peak RSS MB':>12}"
    print(f"{header} {'VmHWM MB':>9} {'end RSS MB':>11}")
    failed = False
    for method, figures in rows:
        for n in (small, large):
            f = figures[n]
            assert f["instances"] == n and f["ok"], f
            print(
                f"{method:<8} {n:>6} {f['megabytes']:>9} {f['seconds']:>8} {f['baseline_rss_mb']:>12} "
                f"{f['peak_rss_mb']:>12} {f['vmhwm_mb']:>9} {f['final_rss_mb']:>11}"
            )
        growth = float(figures[large]["peak_rss_mb"]) - float(figures[small]["peak_rss_mb"])  # type: ignore[arg-type]
        verdict = "ok" if growth <= args.limit_mb else f"OVER the {args.limit_mb:g} MB limit"
        failed |= growth > args.limit_mb
        print(f"{method:<8} {'diff':>6} {'':>9} {'':>8} {'':>12} {growth:>+12.1f}  {verdict} (ru_maxrss)")
        run.figure(
            f"{method.replace('-', '_')}_growth_mb",
            growth,
            "MB",
            label=f"retrieve peak RSS, {large:,} vs {small:,} instances, {method.upper()}",
            target=("<=", args.limit_mb),
            runs={str(n): figures[n] for n in (small, large)},
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
