"""A bulk migration of many small studies between two real Orthancs, its worker killed twice midway,
next to Orthanc's own transfer of the same set.

    .venv/bin/python benchmarks/migration.py [--studies 2000] [--kills 2] [--rows 128]

Issue #23's benchmark. Starts Orthanc A (the old archive, holding N synthetic studies: CT of 3
instances, MR of 3 series of one instance, CR of one, in turn, at rows x rows pixels), B (the new
archive, empty) and C (empty, for the baseline). Then:

(a) the portal's migration (region.migration) A → B, run by a real `celery -A portal worker` process
    (one pool process, the `bulk` queue) on a PostgreSQL database of its own, unthrottled and at any
    hour, killed with kill -9 (its whole process group) when a third and two thirds of the studies are
    copied, restarted after its lease has run out; it must end with the comparison report showing
    0 missing and 0 mismatched;
(b) Orthanc A's own `/peers/c/store` of every study, synchronously (HTTP, Orthanc to Orthanc).

Prints studies/hour, instances/s and MB/s of each, and the CPU seconds Orthanc A and B (or C) spent
(A+B is what the PACS pay), plus the portal worker's own CPU. Records the run through benchmarks/record.py.
Wall time of (a) counts the time the killed worker was down (a lease, twice) and is also given without it.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORK = Path(tempfile.mkdtemp(prefix="migration-bench-"))
BENCH_DB = "portal_migration_bench"
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
os.environ["DATABASE_URL"] = f"{PG}/{BENCH_DB}"
os.environ["SPOOL_DIR"] = str(WORK / "spool")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/6")
os.environ["MIGRATION_LEASE_SECONDS"] = LEASE = "10"
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")


def _fresh_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')


def _cpu_of(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _group_cpu(pgid: int) -> float:
    """CPU seconds of every live process in a process group (a worker: its main process and pool)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid:
            total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / tick
    return total


def _make_studies(folder: Path, count: int, rows: int) -> tuple[int, int]:
    from dicomkit.sim.synthetic import make_study

    instances = size = 0
    for n in range(count):
        modality, per = [("CT", 3), ("MR", 3), ("CR", 1)][n % 3]
        paths = make_study(
            folder,
            modality=modality,
            n_instances=per,
            rows=rows,
            columns=rows,
            seed=10_000 + n,
            study_date=f"20{15 + n % 10}{1 + n % 12:02d}{1 + n % 28:02d}",
        )
        instances += len(paths)
        size += sum(p.stat().st_size for p in paths)
    return instances, size


def _storescu(folder: Path, port: int) -> None:
    env = {**os.environ, "TCP_NODELAY": "1"}
    subprocess.run(
        ["storescu", "-aec", "ORTHANC", "+sd", "+r", "-q", "127.0.0.1", str(port), str(folder)],
        check=True,
        env=env,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--rows", type=int, default=128)
    args = parser.parse_args()

    _fresh_database()
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    print(f"work folder {WORK}; migrating the bench database {BENCH_DB}…", flush=True)
    call_command("migrate", verbosity=0)

    from audit.context import SYSTEM
    from directory.models import Gateway, Trust
    from region import migration
    from region.models import MigrationJob, MigrationStudy
    from region.selectors import migration_progress
    from tests.dicom.orthanc import OrthancProcess, free_port
    from tests.transfers.worker import Worker, isolated_broker

    portal = {"portal": (settings.DICOM_AE_TITLE, "127.0.0.1", free_port())}
    c = OrthancProcess(WORK / "c", aet="ARCHIVE_C", modalities=portal).start()
    a = OrthancProcess(
        WORK / "a", aet="ARCHIVE_A", modalities=portal, extra={"OrthancPeers": {"c": {"Url": c.url}}}
    ).start()
    b = OrthancProcess(WORK / "b", aet="ARCHIVE_B", modalities=portal).start()
    servers = {"A": a, "B": b, "C": c}
    try:
        started = time.perf_counter()
        instances, size = _make_studies(WORK / "data", args.studies, args.rows)
        print(
            f"made {args.studies} studies, {instances} instances, {size / 1e6:.1f} MB "
            f"in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        started = time.perf_counter()
        _storescu(WORK / "data", a.dicom_port)
        held = len(a.session().get(f"{a.url}/studies", timeout=60).json())
        assert held == args.studies, f"A holds {held} studies"
        print(f"loaded A in {time.perf_counter() - started:.0f} s", flush=True)

        trust = Trust.objects.create(ods_code="RMB", name="Migration Bench Trust")
        from accounts.models import Membership, User
        from accounts.roles import Role

        admin = User.objects.create_user(email="admin@bench.invalid", password=None, full_name="Bench Admin")
        Membership.objects.create(user=admin, trust=trust, role=Role.REGIONAL_ADMIN)
        source = Gateway.objects.create(
            trust=trust, name="A", ae_title=a.aet, host="127.0.0.1", port=a.dicom_port, retrieve_method="c-get"
        )
        destination = Gateway.objects.create(
            trust=trust, name="B", ae_title=b.aet, host="127.0.0.1", port=b.dicom_port, retrieve_method="c-get"
        )

        env = {"MIGRATION_LEASE_SECONDS": LEASE, "LOG_LEVEL": "WARNING", "TCP_NODELAY": "1"}
        worker_cpu = 0.0
        down = 0.0
        with isolated_broker(WORK / "broker") as options:

            def start() -> Worker:
                return Worker(WORK / "worker", options, env_extra=env, concurrency=1, queues="bulk").start()

            worker = start()
            cpu_before = {k: _cpu_of([s.proc.pid]) for k, s in servers.items()}  # type: ignore[union-attr]
            began = time.perf_counter()
            job = migration.migration_create(
                name="bench", source=source, destination=destination, user=admin, actor=SYSTEM
            )
            kills_at = [args.studies * (k + 1) // (args.kills + 1) for k in range(args.kills)]
            for threshold in kills_at:
                while MigrationStudy.objects.filter(job=job).exclude(state="pending").count() < threshold:
                    _check_alive(worker)
                    time.sleep(0.5)
                worker_cpu += _group_cpu(worker.proc.pid)  # type: ignore[union-attr]
                os.killpg(worker.proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
                worker.proc.wait()  # type: ignore[union-attr]
                worker.proc = None
                killed = time.perf_counter()
                done_then = MigrationStudy.objects.filter(job=job).exclude(state="pending").count()
                print(f"killed the worker (kill -9) with {done_then} studies copied", flush=True)
                time.sleep(2 * int(LEASE) + 1)
                worker = start()
                migration.sweep()
                down += time.perf_counter() - killed
            while not MigrationJob.objects.filter(pk=job.pk, status__in=MigrationJob.FINISHED).exists():
                _check_alive(worker)
                time.sleep(0.5)
            wall = time.perf_counter() - began
            worker_cpu += _group_cpu(worker.proc.pid)  # type: ignore[union-attr]
            cpu_after = {k: _cpu_of([s.proc.pid]) for k, s in servers.items()}  # type: ignore[union-attr]
            worker.stop()
        job.refresh_from_db()
        progress = migration_progress(job)
        portal_cpu = {k: round(cpu_after[k] - cpu_before[k], 2) for k in ("A", "B")}
        assert job.status == "completed", (job.status, job.last_error)
        report = job.report
        print(f"report: {report}", flush=True)

        # (b) Orthanc's own transfer of the same set, A → C.
        ids = a.session().get(f"{a.url}/studies", timeout=60).json()
        cpu_before = {k: _cpu_of([s.proc.pid]) for k, s in servers.items()}  # type: ignore[union-attr]
        began = time.perf_counter()
        reply = a.session().post(f"{a.url}/peers/c/store", json={"Resources": ids, "Synchronous": True}, timeout=3600)
        reply.raise_for_status()
        peers_wall = time.perf_counter() - began
        cpu_after = {k: _cpu_of([s.proc.pid]) for k, s in servers.items()}  # type: ignore[union-attr]
        peers_cpu = {k: round(cpu_after[k] - cpu_before[k], 2) for k in ("A", "C")}
        held_c = len(c.session().get(f"{c.url}/instances", timeout=120).json())
        assert held_c == instances, f"C holds {held_c} of {instances} instances"

        active = wall - down
        figures = {
            "studies": args.studies,
            "instances": instances,
            "megabytes": round(size / 1e6, 1),
            "kills": args.kills,
            "report": report,
            "migration": {
                "wall_s": round(wall, 1),
                "wall_without_downtime_s": round(active, 1),
                "studies_per_hour": round(args.studies * 3600 / active),
                "instances_per_s": round(instances / active, 1),
                "mb_per_s": round(size / 1e6 / active, 2),
                "copy_seconds": round(job.copy_seconds, 1),
                "instances_per_s_while_copying": progress.instances_per_second,
                "orthanc_cpu_s": portal_cpu,
                "orthanc_cpu_s_total": round(sum(portal_cpu.values()), 2),
                "portal_worker_cpu_s": round(worker_cpu, 1),
                "passes": job.passes,
            },
            "orthanc_peers_store": {
                "wall_s": round(peers_wall, 1),
                "studies_per_hour": round(args.studies * 3600 / peers_wall),
                "instances_per_s": round(instances / peers_wall, 1),
                "mb_per_s": round(size / 1e6 / peers_wall, 2),
                "orthanc_cpu_s": peers_cpu,
                "orthanc_cpu_s_total": round(sum(peers_cpu.values()), 2),
            },
            "load_average": os.getloadavg(),
        }
        _print(figures)
        record(figures, vars(args))
    finally:
        for server in servers.values():
            server.remove()


def _check_alive(worker) -> None:
    if worker.proc is None or worker.proc.poll() is not None:
        raise RuntimeError(f"the worker died:\n{worker.log()[-4000:]}")


def _print(f: dict) -> None:
    m, p = f["migration"], f["orthanc_peers_store"]
    print()
    print(f"{f['studies']} studies, {f['instances']} instances, {f['megabytes']} MB; worker killed {f['kills']}x")
    print(f"{'':<28}{'wall s':>9}{'studies/h':>11}{'inst/s':>9}{'MB/s':>8}{'Orthanc CPU-s (src+dst)':>26}")
    print(
        f"{'portal migration':<28}{m['wall_without_downtime_s']:>9}{m['studies_per_hour']:>11}"
        f"{m['instances_per_s']:>9}{m['mb_per_s']:>8}{m['orthanc_cpu_s_total']:>14} "
        f"(A {m['orthanc_cpu_s']['A']} + B {m['orthanc_cpu_s']['B']})"
    )
    print(
        f"{'Orthanc /peers/c/store':<28}{p['wall_s']:>9}{p['studies_per_hour']:>11}{p['instances_per_s']:>9}"
        f"{p['mb_per_s']:>8}{p['orthanc_cpu_s_total']:>14} (A {p['orthanc_cpu_s']['A']} + C {p['orthanc_cpu_s']['C']})"
    )
    print(f"portal worker CPU-s {m['portal_worker_cpu_s']}; migration wall with the two downtimes {m['wall_s']} s")
    print(f"report {f['report']}; load average {f['load_average']}")


def record(figures: dict, arguments: dict) -> None:
    """The run's figures through benchmarks/record.py (results/migration/<time>-<host>.json)."""
    from record import Run

    m, p = figures["migration"], figures["orthanc_peers_store"]
    with Run(__file__, arguments=arguments) as run:
        run.note(
            f"{figures['studies']} small studies ({figures['instances']} instances, {figures['megabytes']} MB), "
            f"worker killed -9 {figures['kills']}x; vs Orthanc A /peers/c/store of the same set"
        )
        run.figure(
            "studies_per_hour",
            m["studies_per_hour"],
            "studies/h",
            label=f"{figures['studies']:,} studies migrated, worker killed {figures['kills']}x "
            f"({figures['report']['missing']} missing; Orthanc A+B {m['orthanc_cpu_s_total']} CPU-s vs "
            f"{p['orthanc_cpu_s_total']} for its own /peers store)",
        )
        run.figure("instances_per_s", m["instances_per_s"], "instances/s")
        run.figure(
            "orthanc_cpu_s",
            m["orthanc_cpu_s_total"],
            "CPU-s",
            detail=m["orthanc_cpu_s"],
        )
        run.figure(
            "peers_orthanc_cpu_s",
            p["orthanc_cpu_s_total"],
            "CPU-s",
            detail=p["orthanc_cpu_s"],
        )
        run.figure("peers_studies_per_hour", p["studies_per_hour"], "studies/h")
        run.figure("peers_instances_per_s", p["instances_per_s"], "instances/s")
        run.figure(
            "missing", figures["report"]["missing"], "studies", label="missing after two kills", target=("<=", 0)
        )
        mismatched = figures["report"]["count_mismatch"] + figures["report"]["hash_mismatch"]
        run.figure("mismatched", mismatched, "studies", target=("<=", 0))
        run.figure(
            "wall_s", m["wall_without_downtime_s"], "s", detail={k: v for k, v in m.items() if k != "orthanc_cpu_s"}
        )
        run.figure("portal_worker_cpu_s", m["portal_worker_cpu_s"], "CPU-s")


if __name__ == "__main__":
    main()
