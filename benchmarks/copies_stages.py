"""What the copies app's two engine stages cost per instance (the before-store path of every transfer).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal_copies .venv/bin/python benchmarks/copies_stages.py \
        [--instances 128] [--rounds 3]

Writes a synthetic CT study (512 x 512) to a temporary folder and runs the registered stages over it in
batches of 32, as the engine does, inside a transaction that is rolled back: (1) a destination with no
mapping table and an agreement that keeps private elements (coercion reads nothing; the register notes each
batch: one header read per study and one INSERT), and (2) a destination with a mapping table and an agreement
that removes private elements (every file read, changed, rewritten and rehashed), beside (0) the other stages
alone (reconciliation, configured to change nothing). Prints ms per instance and
MB/s, best of the rounds, and records the run (record.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("SECRET_KEY", "benchmark")
os.environ.setdefault("LOG_LEVEL", "WARNING")

BATCH = 32

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import Run  # noqa: E402


class Rollback(Exception):
    pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with Run(__file__, arguments=vars(args)) as run:
        results, size = measure(args)
        for case, seconds in results.items():
            key = case.replace(" + ", "_").replace(" ", "_")
            run.figure(
                f"{key}_ms_per_instance",
                seconds * 1000 / args.instances,
                "ms",
                label=f"copies stages, {case}: per instance" if case != "no copies stages" else "",
                mb_per_s=size / seconds / 1e6,
            )


def measure(args: argparse.Namespace) -> tuple[dict[str, float], int]:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import transaction

    call_command("migrate", verbosity=0)
    from accounts.models import User
    from copies.models import ProcedureMapping
    from dicomkit.sim.synthetic import make_study
    from directory.models import Gateway, SharingAgreement, Trust
    from tests.copies.conftest import retrieved
    from transfers import stages
    from transfers.models import Transfer, TransferInstance

    work = Path(tempfile.mkdtemp(prefix="copies-bench-"))
    originals = make_study(work / "orig", modality="CT", n_instances=args.instances, rows=512, columns=512, seed=5)
    size = sum(p.stat().st_size for p in originals)
    results: dict[str, float] = {}
    try:
        everything = list(stages._stages)
        for case in ("no copies stages", "register only", "mapping + private removal"):
            # The baseline runs the engine's other stages alone (reconciliation, here changing nothing).
            stages._stages[:] = (
                [e for e in everything if "copies" not in type(e[1]).__module__]
                if case.startswith("no")
                else everything
            )
            best = float("inf")
            for _ in range(args.rounds):
                folder = work / "run"
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir()
                paths = [Path(shutil.copy(p, folder / p.name)) for p in originals]
                try:
                    with transaction.atomic():
                        a = Trust.objects.create(ods_code="ZZA", name="Bench A")
                        b = Trust.objects.create(
                            ods_code="ZZB",
                            name="Bench B",
                            reconcile_patient_id=False,
                            prefix_accession=False,
                            prefix_study_description=False,
                        )
                        ga = Gateway.objects.create(trust=a, name="A", ae_title="ZZA", host="127.0.0.1", port=1)
                        gb = Gateway.objects.create(trust=b, name="B", ae_title="ZZB", host="127.0.0.1", port=2)
                        policy = "remove" if case != "register only" else "keep"
                        SharingAgreement.objects.create(trust_a=a, trust_b=b, private_elements=policy)
                        if case != "register only":
                            ProcedureMapping.objects.create(
                                trust=b, description_pattern="CT*", nicip_code="XCTHE", snomed_code="7000001002"
                            )
                        user = User.objects.create(email="bench@bench.invalid")
                        transfer = Transfer.objects.create(
                            source=a,
                            destination=b,
                            source_gateway=ga,
                            destination_gateway=gb,
                            study_instance_uids=[paths[0].parent.name],
                            reason="bench",
                            requested_by=user,
                        )
                        items = retrieved(paths)
                        TransferInstance.objects.bulk_create(
                            [
                                TransferInstance(
                                    transfer=transfer,
                                    sop_instance_uid=i.sop_instance_uid,
                                    study_instance_uid=i.study_instance_uid,
                                    series_instance_uid=i.series_instance_uid,
                                )
                                for i in items
                            ]
                        )
                        start = time.perf_counter()
                        for n in range(0, len(items), BATCH):
                            stages.prepare_batch(transfer, None, items[n : n + BATCH])  # type: ignore[arg-type]
                        best = min(best, time.perf_counter() - start)
                        raise Rollback
                except Rollback:
                    pass
            results[case] = best
            print(
                f"{case:28s} {best * 1000 / args.instances:7.2f} ms/instance  {size / best / 1e6:8.1f} MB/s"
                f"  ({args.instances} instances, {size / 1e6:.1f} MB, best of {args.rounds})"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results, size


if __name__ == "__main__":
    main()
