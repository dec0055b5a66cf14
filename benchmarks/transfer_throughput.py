"""How fast the transfer engine moves a study between two real Orthanc servers, next to Orthanc itself.

    .venv/bin/python benchmarks/transfer_throughput.py [--instances 200] [--rows 512] [--runs 2]

Starts two Orthanc servers (A holds a synthetic CT study, B is empty), then times, each on an empty B:

* Orthanc A's own `/peers/B/store` (HTTP, Orthanc to Orthanc);
* Orthanc A's own `/modalities/B/store` (C-STORE by Orthanc's DCMTK);
* the portal's engine (`transfers.engine.run`): C-GET from A → spool → C-STORE to B, with the ledger,
  checksums and the final C-FIND verification, on a throwaway SQLite database.

Prints MB/s for each (MB = 10^6 bytes of DICOM files) and the engine's fixed cost on a one-instance study.
Needs Debian's `orthanc` and `orthanc-dicomweb` packages.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
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


def timed(label: str, size: int, action, clear) -> float:
    clear()
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    print(f"{label:<44} {seconds:7.2f} s {size / 1e6 / seconds:8.1f} MB/s", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument(
        "--pairs",
        default="c-get/c-store",
        help="comma-separated retrieve/store pairs for the engine, e.g. c-get/c-store,wado-rs/stow-rs",
    )
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from exchange.dicom.synthetic import make_study
    from tests.dicom.orthanc import OrthancProcess, free_port, orthanc_available

    if not orthanc_available():
        sys.exit("Orthanc with the DICOMweb plugin is not installed.")
    call_command("migrate", verbosity=0)
    portal = (settings.DICOM_AE_TITLE, "127.0.0.1", free_port())
    b = OrthancProcess(WORK / "b", aet="BENCH_B", modalities={"portal": portal}).start()
    a = OrthancProcess(
        WORK / "a",
        aet="BENCH_A",
        modalities={"portal": portal, "b": ("BENCH_B", "127.0.0.1", b.dicom_port)},
        extra={"OrthancPeers": {"b": [b.url + "/"]}},
    ).start()
    try:
        paths = make_study(
            WORK / "study", modality="CT", n_instances=args.instances, rows=args.rows, columns=args.rows, seed=5
        )
        one = make_study(WORK / "one", modality="CT", n_instances=1, rows=args.rows, columns=args.rows, seed=6)
        a.upload(paths + one)
        study_uid, one_uid = paths[0].parent.name, one[0].parent.name
        size = sum(p.stat().st_size for p in paths)
        print(f"study: {len(paths)} CT instances, {size / 1e6:.1f} MB; {args.runs} runs each\n", flush=True)
        pairs = [tuple(p.split("/")) for p in args.pairs.split(",")]
        region = _region(a, b)
        orthanc_id = a.find("Study", {"StudyInstanceUID": study_uid})[0]

        def clear() -> None:
            b.delete_study(study_uid)
            b.delete_study(one_uid)

        def orthanc_store(kind: str):
            def go() -> None:
                r = a.session().post(
                    f"{a.url}/{kind}/b/store", json={"Resources": [orthanc_id], "Synchronous": True}, timeout=600
                )
                r.raise_for_status()

            return go

        for _ in range(args.runs):
            timed("Orthanc /peers/b/store (HTTP)", size, orthanc_store("peers"), clear)
            timed("Orthanc /modalities/b/store (C-STORE)", size, orthanc_store("modalities"), clear)
            for pair in pairs:
                _methods(*pair)
                label = f"portal engine ({pair[0].upper()} → spool → {pair[1].upper()})"
                timed(label, size, lambda: _engine(region, study_uid), clear)
        _methods(*pairs[0])
        fixed = [
            timed("portal engine, one instance", one[0].stat().st_size, lambda: _engine(region, one_uid), clear)
            for _ in range(args.runs)
        ]
        print(
            f"\nengine's cost for a one-instance study (plan, retrieve, store, verify, audit): "
            f"{min(fixed) * 1000:.0f} ms"
        )
        assert len(b.find("Instance", {"StudyInstanceUID": one_uid})) == 1
    finally:
        a.remove()
        b.remove()


def _methods(retrieve: str, store: str) -> None:
    from directory.models import Gateway

    Gateway.objects.update(retrieve_method=retrieve, store_method=store)


def _region(a, b, retrieve: str = "c-get", store: str = "c-store"):
    from accounts.models import Membership, User
    from directory.models import Gateway, SharingAgreement, Trust

    ta = Trust.objects.create(ods_code="RB1", name="Bench A")
    tb = Trust.objects.create(ods_code="RB2", name="Bench B")
    SharingAgreement.objects.create(trust_a=ta, trust_b=tb)
    for trust, server in ((ta, a), (tb, b)):
        Gateway.objects.create(
            trust=trust,
            name=server.aet,
            ae_title=server.aet,
            host="127.0.0.1",
            port=server.dicom_port,
            dicomweb_url=server.dicomweb_url,
            retrieve_method=retrieve,
            store_method=store,
        )
    user = User.objects.create_user(email="bench@example.invalid", password=None)
    Membership.objects.create(user=user, trust=ta, role="clinician")
    return ta, tb, user


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
        raise SystemExit(f"transfer ended {status}: {transfer.errors}")


if __name__ == "__main__":
    main()
