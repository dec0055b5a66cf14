"""How fast the portal moves a study between two real Orthanc servers, next to Orthanc and dcmtk.

    .venv/bin/python benchmarks/transfer_throughput.py [--instances 300] [--rows 512] [--runs 2]
        [--pairs c-get/c-store,wado-rs/stow-rs,c-get/stow-rs] [--store-streams N] [--batch-size N]
        [--scratch /dev/shm]

Issue #4's acceptance benchmark. Starts two Orthanc servers (A holds a synthetic CT study, 300 x 512²
≈ 158 MB by default; B is empty), then moves that same study A → B, each time onto an empty B:

(a) through the portal's engine (`transfers.engine.run`, in this process, on a throwaway SQLite
    database, its TRANSFER_SCRATCH_DIR on /dev/shm as docker-compose.yml gives the worker a tmpfs),
    once per retrieve/store pair: plan, retrieve, spool, per-instance ledger with SHA-256,
    store, verification at B from B's own index, audit — everything a real transfer does;
(b) by Orthanc A itself: `/peers/b/store` (HTTP), `/modalities/b/store` (C-STORE by DCMTK) and the
    DICOMweb plugin's `/dicom-web/servers/b/stow` (STOW-RS);
(c) by dcmtk's `storescu` sending the study's files from disk.

Every DICOM process runs with `TCP_NODELAY=1` (Orthanc and storescu read it from their environment;
the portal sets it on its own sockets). After each method B's index must list every instance; that
check is not timed. The destination trust's reconciliation switches are off: this measures transfer,
not the rewriting of identifiers (which would hold the study in the reconciliation queue here).

Prints MB/s for each (MB = 10^6 bytes of DICOM files) with the CPU seconds A, B and this process
(the engine, or storescu) spent on it, the best of each, the portal's best ratio to the best of (b)
and (c) (issue #4's target: ≥ 1.0), and the engine's fixed cost on a one-instance study.
Needs Debian's `orthanc`, `orthanc-dicomweb` and `dcmtk` packages.

Everything but the engine's scratch lives under the system's temp folder, on disk as a PACS's storage
would be. There, B's cost of storing the same study swings by 2x from one minute to the next (ext4's
inode allocation after the previous method's deletions), and with it every figure. `TMPDIR=/dev/shm`
keeps both Orthancs' storage in RAM instead: steadier figures that show what each method costs in CPU.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORK = Path(tempfile.mkdtemp(prefix="transfer-bench-"))
os.environ["DATABASE_URL"] = f"sqlite:///{WORK / 'bench.sqlite3'}"
os.environ["SPOOL_DIR"] = str(WORK / "spool")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")  # no mail in the figures

from record import Run  # noqa: E402 - benchmarks/ is on the path as the script's own folder

PORTAL = "portal"
BASELINE = "baseline"


def timed(label: str, size: int, action: Callable[[], None], clear: Callable[[], None], check: Callable[[], None]):
    """Seconds for `action` onto an emptied B; B must then list the whole study (checked untimed).

    Also prints the CPU seconds each side spent: A's and B's Orthanc, and this process with its
    children (the portal's engine, or storescu): on a machine with few cores the total decides."""
    clear()
    before = _cpu()
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    used = [after - was for after, was in zip(_cpu(), before, strict=True)]
    check()
    load = os.getloadavg()[0]
    cpu = "  ".join(f"{who} {spent:4.2f}" for who, spent in zip(("A", "B", "here"), used, strict=True))
    print(
        f"{label:<52} {seconds:7.2f} s {size / 1e6 / seconds:8.1f} MB/s   CPU-s {cpu}   (load {load:.1f})", flush=True
    )
    return seconds


_SERVERS: list[int] = []  # the pids of Orthanc A and B, once started


def _cpu() -> list[float]:
    """CPU seconds (user + system) so far of A, B and this process with its waited-for children."""
    tick = os.sysconf("SC_CLK_TCK")
    spent = []
    for pid in _SERVERS:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        spent.append((int(fields[11]) + int(fields[12])) / tick)
    mine = os.times()
    return [*spent, mine.user + mine.system + mine.children_user + mine.children_system]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=300)
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument(
        "--pairs",
        default="c-get/c-store,wado-rs/stow-rs,c-get/stow-rs",
        help="comma-separated retrieve/store pairs for the engine",
    )
    parser.add_argument(
        "--store-streams",
        type=int,
        default=None,
        help="TRANSFER_STORE_STREAMS for this run (an A/B of parallel store streams; default: the setting's)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="instances per store batch (an A/B; default: the engine's)"
    )
    parser.add_argument(
        "--scratch",
        default="/dev/shm" if os.access("/dev/shm", os.W_OK) else "",
        help="a RAM-backed folder for the engine's TRANSFER_SCRATCH_DIR, as deployed (default: /dev/shm; "
        "'' spools on disk, under SPOOL_DIR)",
    )
    args = parser.parse_args()
    with Run(__file__, arguments={**vars(args), "TMPDIR": os.environ.get("TMPDIR", "")}) as run:
        measure(args, run)


def measure(args: argparse.Namespace, run: Run) -> None:

    import django

    django.setup()
    from django.conf import settings

    settings.DEBUG = False  # as on a worker: no query log (DEBUG is on above only to skip production checks)
    from django.core.management import call_command

    from dicomkit.sim.synthetic import make_study
    from tests.dicom.orthanc import OrthancProcess, free_port, orthanc_available

    if not orthanc_available():
        sys.exit("Orthanc with the DICOMweb plugin is not installed.")
    if not shutil.which("storescu"):
        sys.exit("dcmtk's storescu is not installed.")
    call_command("migrate", verbosity=0)
    portal = (settings.DICOM_AE_TITLE, "127.0.0.1", free_port())
    b = OrthancProcess(WORK / "b", aet="BENCH_B", modalities={"portal": portal}).start()
    a = OrthancProcess(
        WORK / "a",
        aet="BENCH_A",
        modalities={"portal": portal, "b": ("BENCH_B", "127.0.0.1", b.dicom_port)},
        extra={
            "OrthancPeers": {"b": [b.url + "/"]},
            "DicomWeb": {
                "Enable": True,
                "Root": "/dicom-web/",
                "StudiesMetadata": "MainDicomTags",
                "Servers": {"b": [b.dicomweb_url + "/"]},
            },
        },
    ).start()
    _SERVERS[:] = [a.proc.pid, b.proc.pid]
    try:
        paths = make_study(
            WORK / "study", modality="CT", n_instances=args.instances, rows=args.rows, columns=args.rows, seed=5
        )
        one = make_study(WORK / "one", modality="CT", n_instances=1, rows=args.rows, columns=args.rows, seed=6)
        a.upload(paths + one)
        study_uid, one_uid = paths[0].parent.name, one[0].parent.name
        size = sum(p.stat().st_size for p in paths)
        print(
            f"study: {len(paths)} CT instances {args.rows}², {size / 1e6:.1f} MB; {args.runs} runs each; "
            f"{os.cpu_count()} CPUs, load at start {os.getloadavg()[0]:.1f}\n",
            flush=True,
        )
        pairs = [tuple(p.split("/")) for p in args.pairs.split(",")]
        from transfers.engine import pipeline

        if args.store_streams:
            settings.TRANSFER_STORE_STREAMS = args.store_streams
        if args.batch_size:
            pipeline.BATCH_SIZE = args.batch_size
        if args.scratch:
            settings.TRANSFER_SCRATCH_DIR = tempfile.mkdtemp(prefix="transfer-bench-", dir=args.scratch)
        streams, scratch = settings.TRANSFER_STORE_STREAMS, settings.TRANSFER_SCRATCH_DIR or "disk spool"
        print(
            f"engine: batches of {pipeline.BATCH_SIZE}, up to {streams} store streams, scratch spool: {scratch}\n",
            flush=True,
        )
        region = _region(a, b)
        orthanc_id = a.find("Study", {"StudyInstanceUID": study_uid})[0]

        def clear() -> None:
            b.delete_study(study_uid)
            b.delete_study(one_uid)

        def check(uid: str = study_uid, count: int = len(paths)) -> Callable[[], None]:
            def go() -> None:
                held = len(b.find("Instance", {"StudyInstanceUID": uid}))
                if held != count:
                    raise SystemExit(f"B holds {held} of {count} instances after the transfer")

            return go

        def orthanc_job(path: str) -> Callable[[], None]:
            def go() -> None:
                r = a.session().post(
                    f"{a.url}{path}", json={"Resources": [orthanc_id], "Synchronous": True}, timeout=900
                )
                r.raise_for_status()

            return go

        def storescu() -> None:
            command = ["storescu", "-aet", "BENCHSCU", "-aec", b.aet, "127.0.0.1", str(b.dicom_port)]
            command += ["+sd", str(paths[0].parent)]
            subprocess.run(command, check=True, env={**os.environ, "TCP_NODELAY": "1"}, capture_output=True)

        baselines = {
            "(b) Orthanc /peers/b/store (HTTP)": orthanc_job("/peers/b/store"),
            "(b) Orthanc /modalities/b/store (C-STORE)": orthanc_job("/modalities/b/store"),
            "(b) Orthanc /dicom-web/servers/b/stow (STOW-RS)": orthanc_job("/dicom-web/servers/b/stow"),
            "(c) dcmtk storescu from files (C-STORE)": storescu,
        }
        best: dict[str, dict[str, float]] = {PORTAL: {}, BASELINE: {}}
        for n in range(args.runs):
            print(f"run {n + 1}", flush=True)
            for label, action in baselines.items():
                mbs = size / 1e6 / timed(label, size, action, clear, check())
                best[BASELINE][label] = max(best[BASELINE].get(label, 0.0), mbs)
            for pair in pairs:
                _methods(*pair)
                label = f"(a) portal engine {pair[0].upper()} → {pair[1].upper()}"
                mbs = size / 1e6 / timed(label, size, lambda: _engine(region, study_uid), clear, check())
                best[PORTAL][label] = max(best[PORTAL].get(label, 0.0), mbs)
        _report(best, run, size)
        _methods(*pairs[0])
        fixed = [
            timed(
                "portal engine, one instance",
                one[0].stat().st_size,
                lambda: _engine(region, one_uid),
                clear,
                check(one_uid, 1),
            )
            for _ in range(args.runs)
        ]
        print(
            f"\nengine's cost for a one-instance study (plan, retrieve, store, verify, audit): "
            f"{min(fixed) * 1000:.0f} ms"
        )
        run.figure("one_instance_engine_ms", min(fixed) * 1000, "ms")
    finally:
        a.remove()
        b.remove()
        shutil.rmtree(WORK, ignore_errors=True)
        if settings.TRANSFER_SCRATCH_DIR:
            shutil.rmtree(settings.TRANSFER_SCRATCH_DIR, ignore_errors=True)


def _report(best: dict[str, dict[str, float]], run: Run, size: int) -> None:
    print("\nbest of the runs:")
    for group in (BASELINE, PORTAL):
        for label, mbs in best[group].items():
            print(f"  {label:<52} {mbs:8.1f} MB/s")
    portal_label, portal = max(best[PORTAL].items(), key=lambda kv: kv[1])
    other_label, other = max(best[BASELINE].items(), key=lambda kv: kv[1])
    ratio = portal / other
    print(
        f"\nratio, portal's best / best of (b) and (c): {portal:.1f} / {other:.1f} MB/s = {ratio:.2f} "
        f"({portal_label.removeprefix('(a) ')} vs {other_label.removeprefix('(b) ').removeprefix('(c) ')}); "
        f"target ≥ 1.0: {'met' if ratio >= 1.0 else 'NOT met'}",
        flush=True,
    )
    for group in (BASELINE, PORTAL):
        for label, mbs in best[group].items():
            run.figure(label, mbs, "MB/s")
    study = f"{size / 1e6:.0f} MB CT study, Orthanc to Orthanc"
    pair = portal_label.removeprefix("(a) portal engine ")
    run.figure("portal_best_mb_s", portal, "MB/s", label=f"engine's best, {study}, {pair}")
    run.figure("baseline_best_mb_s", other, "MB/s", label=f"best of Orthanc and storescu, {other_label[4:]}")
    run.figure("ratio", ratio, "", label="engine / best of Orthanc and storescu, best runs", target=(">=", 1.0))


def _methods(retrieve: str, store: str) -> None:
    """The pair's methods on both gateways; an all-DICOMweb pair also queries (plan, verification) by
    QIDO-RS, as a gateway configured for DICOMweb alone would."""
    from directory.models import Gateway

    query = "qido-rs" if (retrieve, store) == ("wado-rs", "stow-rs") else "c-find"
    Gateway.objects.update(retrieve_method=retrieve, store_method=store, query_method=query)


def _region(a, b, retrieve: str = "c-get", store: str = "c-store"):
    from bench_region import two_trusts

    return two_trusts(a, b, retrieve=retrieve, store=store)


def _engine(region, study_uid: str) -> None:
    from transfers import engine, services, tasks

    tasks.enqueue = lambda transfer_id, queue: None  # run here, in this process, without a broker
    source, destination, user = region
    transfer = services.transfer_create(
        source=source,
        destination=destination,
        study_instance_uids=[study_uid],
        priority="urgent",
        reason="benchmark",
        requested_by=user,
    )
    status = engine.run(transfer.pk, owner="benchmark")
    if status != "completed":
        transfer.refresh_from_db()
        raise SystemExit(f"transfer ended {status}: {transfer.errors}")


if __name__ == "__main__":
    main()
