"""A region at peak: four PACS, a queue of mixed studies between them, two Celery workers.

    TMPDIR=/dev/shm .venv/bin/python benchmarks/region_peak.py [--studies 400] [--small 600]
        [--ledger-rows 1000000] [--matrix 128]

Issue #20's target 5. Needs PostgreSQL (DATABASE_URL's server: the benchmark creates and drops a
database of its own, `<name>_regionpeak`), Redis (REDIS_URL: the broker, keys under a prefix of this
run's own), Debian's `orthanc` and `orthanc-dicomweb`.

1. Four Orthanc servers (two trusts' gateways speak DIMSE: C-GET / C-STORE / C-FIND; two DICOMweb:
   WADO-RS / STOW-RS / QIDO-RS), every trust allowed to send to every other.
2. `--studies` studies of mixed size and modality, each held by one PACS and bound for another: CR
   pairs, CT of 100-300 slices and three-series MR. The pixel matrix is `--matrix` (default 128²: the
   whole queue then fits this machine's RAM and disk; instances per second, not bytes, is the figure).
3. The ledger is filled with `--ledger-rows` rows of finished transfers first (COPY), as a region's
   database holds after months.
4. Baseline: Orthanc moving the same studies by `/peers/<dest>/store`, one after another.
5. The portal: every study submitted as a routine transfer at once, two worker processes
   (`celery worker -c N` each, N the CPUs as the Procfile's default); a trauma transfer of a 20-slice
   CT submitted when the queue is full.
   Aggregate instances/s = instances / (last completion - first submission).
6. Small studies: `--small` CR-pair transfers submitted at once into the idle workers; completions
   per minute.

Prints the figures with every process's CPU-seconds (Orthancs, workers) and writes JSON.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from record import Run  # benchmarks/ is on the path as the script's own folder

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORK = Path(tempfile.mkdtemp(prefix="region-peak-"))
BASE_DB = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal")
BENCH_DB = BASE_DB.rsplit("/", 1)[0] + "/" + BASE_DB.rsplit("/", 1)[1].split("?")[0] + "_regionpeak"
os.environ["DATABASE_URL"] = BENCH_DB
os.environ["SPOOL_DIR"] = str(WORK / "spool")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("SECRET_KEY", "region-peak-benchmark")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
NAMES = ("RP1", "RP2", "RP3", "RP4")


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and its waited-for children."""
    tick = os.sysconf("SC_CLK_TCK")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / tick


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its living descendants (a Celery worker and its pool child)."""
    total = _proc_cpu(pid)
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return total
    return total + sum(_tree_cpu(int(child)) for child in children)


def _database(action: str) -> None:
    import psycopg

    server, name = BENCH_DB.rsplit("/", 1)
    with psycopg.connect(server + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if action == "create":
            conn.execute(f'CREATE DATABASE "{name}"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=400)
    parser.add_argument("--small", type=int, default=600)
    parser.add_argument("--ledger-rows", type=int, default=1_000_000)
    parser.add_argument("--matrix", type=int, default=128)
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=os.cpu_count() or 2,
        help="each worker's -c (Procfile: Celery's default, the CPUs)",
    )
    args = parser.parse_args()
    run = Run(__file__, arguments={**vars(args), "TMPDIR": os.environ.get("TMPDIR", "")})
    _database("create")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.DEBUG = False
    call_command("migrate", verbosity=0)
    from tests.dicom.orthanc import OrthancProcess, free_port

    portal = (settings.DICOM_AE_TITLE, "127.0.0.1", free_port())
    servers: list[OrthancProcess] = []
    figures: dict = {"settings": vars(args)}
    try:
        ports = {name: (free_port(), free_port()) for name in NAMES}
        for name in NAMES:
            http, dicom = ports[name]
            others = [n for n in NAMES if n != name]
            servers.append(
                OrthancProcess(
                    WORK / name,
                    aet=name,
                    http_port=http,
                    dicom_port=dicom,
                    modalities={"portal": portal},
                    extra={"OrthancPeers": {n: [f"http://127.0.0.1:{ports[n][0]}/"] for n in others}},
                ).start()
            )
        pacs = dict(zip(NAMES, servers, strict=True))
        trusts, user = _region(pacs)
        rng = random.Random(args.seed)
        print(f"generating {args.studies} studies ({args.matrix}² pixels) ...", flush=True)
        queue = _studies(args.studies, args.matrix, rng)
        _upload(pacs, queue)
        trauma = _studies(1, args.matrix, rng, kinds=[("CT", 20)], start=10_000)[0]
        small = _studies(args.small, args.matrix, rng, kinds=[("CR", 2)], start=20_000)
        _upload(pacs, [trauma, *small])
        instances = sum(s["count"] for s in queue)
        figures["queue"] = {"studies": len(queue), "instances": instances, "bytes": sum(s["bytes"] for s in queue)}
        print(
            f"queue: {len(queue)} studies, {instances} instances; ledger: filling {args.ledger_rows} rows", flush=True
        )
        _fill_ledger(trusts, user, args.ledger_rows)

        # --- baseline: Orthanc /peers/<dest>/store, one study after another -------------------------------
        before = {name: _proc_cpu(s.proc.pid) for name, s in pacs.items()}
        started = time.perf_counter()
        for study in queue:
            source = pacs[study["source"]]
            oid = source.find("Study", {"StudyInstanceUID": study["uid"]})[0]
            r = source.session().post(
                f"{source.url}/peers/{study['destination']}/store",
                json={"Resources": [oid], "Synchronous": True},
                timeout=900,
            )
            r.raise_for_status()
        seconds = time.perf_counter() - started
        cpu = {name: _proc_cpu(s.proc.pid) - before[name] for name, s in pacs.items()}
        figures["orthanc_peers_sequential"] = {
            "seconds": seconds,
            "instances_per_s": instances / seconds,
            "pacs_cpu_s": sum(cpu.values()),
        }
        print(
            f"Orthanc /peers/store, sequentially: {seconds:.1f} s, {instances / seconds:.1f} instances/s, "
            f"PACS CPU {sum(cpu.values()):.1f} s (load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
        for study in queue:
            pacs[study["destination"]].delete_study(study["uid"])

        # --- the portal: two workers, the whole queue at once, a trauma study into the full queue ---------
        from tests.transfers.worker import Worker, isolated_broker

        with isolated_broker(WORK / "broker") as options:
            env = {
                "TRANSFER_SCRATCH_DIR": tempfile.mkdtemp(prefix="region-peak-", dir="/dev/shm"),
                "TRANSFER_LEASE_SECONDS": "120",
                "LOG_LEVEL": "WARNING",
                "DATABASE_URL": BENCH_DB,
            }
            workers = [
                Worker(WORK / f"worker{i}", options, env_extra=env, concurrency=args.concurrency).start()
                for i in (1, 2)
            ]
            try:
                figures["portal"] = _portal_run(pacs, trusts, user, queue, trauma, workers, instances)
                figures["small_studies"] = _small_run(trusts, user, small, workers)
            finally:
                for worker in workers:
                    worker.stop()
        portal_rate = figures["portal"]["instances_per_s"]
        baseline_rate = figures["orthanc_peers_sequential"]["instances_per_s"]
        figures["ratio_to_orthanc"] = portal_rate / baseline_rate
        print(
            f"\ntargets: aggregate {portal_rate:.1f} / {baseline_rate:.1f} instances/s = "
            f"{figures['ratio_to_orthanc']:.2f} x Orthanc (≥ 1.0); small studies "
            f"{figures['small_studies']['per_minute']:.0f}/min (≥ 300); trauma started after "
            f"{figures['portal']['trauma_start_s']:.1f} s (≤ 2), completed after "
            f"{figures['portal']['trauma_complete_s']:.1f} s (≤ 5)",
            flush=True,
        )
        _record(run, figures)
        run.save()
    finally:
        for server in servers:
            server.remove()
        from django.db import connections

        connections.close_all()
        _database("drop")
        shutil.rmtree(WORK, ignore_errors=True)


KINDS = [("CR", 2)] * 5 + [("CT", 100), ("CT", 200), ("CT", 300)] + [("MR", 30)] * 2


def _studies(n: int, matrix: int, rng: random.Random, kinds=KINDS, start: int = 0) -> list[dict]:
    from dicomkit.sim.synthetic import make_study

    studies = []
    for i in range(n):
        modality, count = rng.choice(kinds)
        source, destination = rng.sample(NAMES, 2)
        size = {"rows": matrix, "columns": matrix} if modality != "CR" else {"rows": matrix * 2, "columns": matrix * 2}
        paths = make_study(
            WORK / "studies" / str(start + i), modality=modality, n_instances=count, seed=start + i + 1, **size
        )
        studies.append(
            {
                "uid": paths[0].parent.name,
                "paths": paths,
                "count": len(paths),
                "bytes": sum(p.stat().st_size for p in paths),
                "modality": modality,
                "source": source,
                "destination": destination,
            }
        )
    return studies


def _upload(pacs: dict, studies: list[dict]) -> None:
    def one(study: dict) -> None:
        pacs[study["source"]].upload(study["paths"])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, studies))


def _region(pacs: dict):
    from accounts.models import Membership, User
    from directory.models import Gateway, SharingAgreement, Trust

    trusts = {}
    for i, (name, server) in enumerate(pacs.items()):
        trust = Trust.objects.create(
            ods_code=name,
            name=f"Region peak trust {name}",
            reconcile_patient_id=False,
            prefix_accession=False,
            prefix_study_description=False,
        )
        web = i >= 2  # two trusts' gateways speak DICOMweb, two DIMSE
        Gateway.objects.create(
            trust=trust,
            name=name,
            ae_title=name,
            host="127.0.0.1",
            port=server.dicom_port,
            dicomweb_url=server.dicomweb_url,
            retrieve_method="wado-rs" if web else "c-get",
            store_method="stow-rs" if web else "c-store",
            query_method="qido-rs" if web else "c-find",
        )
        trusts[name] = trust
    names = list(trusts)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            SharingAgreement.objects.create(trust_a=trusts[a], trust_b=trusts[b])
    user = User.objects.create_user(email="region-peak@example.invalid", password=None)
    for trust in trusts.values():
        Membership.objects.create(user=user, trust=trust, role="clinician")
    return trusts, user


def _fill_ledger(trusts: dict, user, rows: int) -> None:
    """`rows` ledger rows of 1,000-instance finished transfers, by COPY."""
    from django.db import connection
    from django.utils import timezone

    from directory.models import Gateway
    from transfers.models import Status, Transfer

    if rows <= 0:
        return
    a, b = list(trusts.values())[:2]
    ga, gb = Gateway.objects.get(trust=a), Gateway.objects.get(trust=b)
    per = 1000
    now = timezone.now()
    transfers = Transfer.objects.bulk_create(
        [
            Transfer(
                source=a,
                destination=b,
                source_gateway=ga,
                destination_gateway=gb,
                study_instance_uids=[f"2.25.{i}"],
                reason="history",
                requested_by=user,
                status=Status.COMPLETED,
                completed_at=now,
            )
            for i in range((rows + per - 1) // per)
        ]
    )
    started = time.perf_counter()
    columns = (
        "transfer_id, sop_instance_uid, study_instance_uid, series_instance_uid, size, sha256, state, attempts, "
        "last_error, updated_at"
    )
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY transfers_transferinstance ({columns}) FROM STDIN") as copy,
    ):
        for n in range(rows):
            t = transfers[n // per]
            copy.write_row(
                (t.pk, f"2.25.{t.pk}.{n}", f"2.25.{t.pk}", f"2.25.{t.pk}.1", 524288, "0" * 64, "stored", 1, "", now)
            )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE transfers_transferinstance")
    print(f"ledger: {rows} rows by COPY in {time.perf_counter() - started:.1f} s", flush=True)


def _submit(trusts: dict, user, study: dict, priority: str = "routine"):
    from transfers import services

    return services.transfer_create(
        source=trusts[study["source"]],
        destination=trusts[study["destination"]],
        study_instance_uids=[study["uid"]],
        priority=priority,
        reason="region peak benchmark",
        requested_by=user,
    )


def _wait(ids: list[int], workers, timeout: float = 7200) -> None:
    from transfers.models import FINISHED, Transfer

    deadline = time.monotonic() + timeout
    while Transfer.objects.filter(pk__in=ids).exclude(status__in=FINISHED).exists():
        if time.monotonic() > deadline or any(w.proc.poll() is not None for w in workers):
            raise SystemExit("transfers did not finish (or a worker died)")
        time.sleep(0.5)


def _portal_run(pacs, trusts, user, queue, trauma, workers, instances: int) -> dict:
    from transfers.models import Status, Transfer

    before = {name: _proc_cpu(s.proc.pid) for name, s in pacs.items()}
    worker_before = sum(_tree_cpu(w.proc.pid) for w in workers)
    submitted = time.time()
    ids = [_submit(trusts, user, study).pk for study in queue]
    print(f"portal: {len(ids)} transfers queued in {time.time() - submitted:.1f} s", flush=True)
    # The trauma study goes in once the queue is full and the workers are busy with it.
    while Transfer.objects.filter(pk__in=ids, status=Status.COMPLETED).count() < 5:
        time.sleep(0.2)
    urgent = _submit(trusts, user, trauma, priority="trauma")
    _wait([urgent.pk], workers)
    urgent.refresh_from_db()
    trauma_start = (urgent.started_at - urgent.created_at).total_seconds()
    trauma_complete = (urgent.completed_at - urgent.created_at).total_seconds()
    print(
        f"trauma: status {urgent.status}, started after {trauma_start:.2f} s, completed after {trauma_complete:.2f} s",
        flush=True,
    )
    _wait(ids, workers)
    done = Transfer.objects.filter(pk__in=ids)
    last = max(t.completed_at for t in done).timestamp()
    statuses = {s: done.filter(status=s).count() for s in set(done.values_list("status", flat=True))}
    seconds = last - submitted
    cpu = {name: _proc_cpu(s.proc.pid) - before[name] for name, s in pacs.items()}
    worker_cpu = sum(_tree_cpu(w.proc.pid) for w in workers) - worker_before
    print(
        f"portal: {seconds:.1f} s, {instances / seconds:.1f} instances/s, statuses {statuses}; CPU-s PACS "
        f"{sum(cpu.values()):.1f}, workers {worker_cpu:.1f} (load {os.getloadavg()[0]:.1f})",
        flush=True,
    )
    return {
        "seconds": seconds,
        "instances_per_s": instances / seconds,
        "statuses": statuses,
        "pacs_cpu_s": sum(cpu.values()),
        "workers_cpu_s": worker_cpu,
        "trauma_status": urgent.status,
        "trauma_start_s": trauma_start,
        "trauma_complete_s": trauma_complete,
    }


def _small_run(trusts, user, small, workers) -> dict:
    from transfers.models import Transfer

    worker_before = sum(_tree_cpu(w.proc.pid) for w in workers)
    submitted = time.time()
    ids = [_submit(trusts, user, study).pk for study in small]
    _wait(ids, workers)
    done = Transfer.objects.filter(pk__in=ids)
    seconds = max(t.completed_at for t in done).timestamp() - submitted
    worker_cpu = sum(_tree_cpu(w.proc.pid) for w in workers) - worker_before
    statuses = {s: done.filter(status=s).count() for s in set(done.values_list("status", flat=True))}
    per_minute = len(ids) / seconds * 60
    print(
        f"small studies: {len(ids)} CR pairs in {seconds:.1f} s = {per_minute:.0f}/min, statuses {statuses}, "
        f"workers CPU {worker_cpu:.1f} s ({worker_cpu / len(ids) * 1000:.0f} ms each)",
        flush=True,
    )
    return {
        "transfers": len(ids),
        "seconds": seconds,
        "per_minute": per_minute,
        "statuses": statuses,
        "workers_cpu_s": worker_cpu,
    }


def _record(run: Run, figures: dict) -> None:
    portal, small = figures["portal"], figures["small_studies"]
    run.figure(
        "aggregate_ratio",
        figures["ratio_to_orthanc"],
        "",
        label="region at peak: portal's instances/s / Orthanc /peers/store one study after another",
        target=(">=", 1.0),
        portal_instances_per_s=portal["instances_per_s"],
        orthanc_instances_per_s=figures["orthanc_peers_sequential"]["instances_per_s"],
        **{k: v for k, v in figures.items() if k != "settings"},
    )
    run.figure(
        "small_studies_per_minute",
        small["per_minute"],
        "/min",
        label="CR-pair transfers a minute, ledger at 1 M rows, two workers",
        target=(">=", 300),
    )
    run.figure(
        "trauma_start_s",
        portal["trauma_start_s"],
        "s",
        target=("<=", 2),
    )
    run.figure(
        "trauma_complete_s",
        portal["trauma_complete_s"],
        "s",
        label=f"trauma CT into the full queue: completed after (started after {portal['trauma_start_s']:.2f} s, ≤ 2)",
        target=("<=", 5),
    )
    run.note("shared 2-core machine under load: the workers got a fraction of the CPU; see docs/performance.md")


if __name__ == "__main__":
    main()
