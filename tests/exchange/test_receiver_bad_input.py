"""The deployed receiver (`manage.py run_dicom_receiver`, its own process) against bad input: pydicom's own
test corpus and seeded mutations of it sent as raw bytes, then a 256 MB instance.

Every file answered Success is stored with its data set byte for byte as sent (the receiver's stored form:
its own File Meta Information, then the data set as received); every other one is quarantined with a reason,
its bytes kept; nothing is answered 0xA700 (a sender retries that for ever); the process survives; and its
memory does not grow with the size of an instance.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dicomkit.spool import dataset_sha256
from dicomkit.structure import file_meta
from directory.models import Gateway, Trust
from exchange.models import QuarantinedInstance, ReceivedInstance
from tests.dicom import mutants
from tests.dicom.orthanc import free_port
from tests.transfers.worker import BASE_DIR, database_url

pytestmark = [pytest.mark.interop, pytest.mark.filterwarnings("ignore::UserWarning")]
RECEIVER_AE = "IEP_BADIN_RX"
SENDER_AE = "BADINPUT"


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) of a process, in MB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return found


@dataclass
class ReceiverProcess:
    proc: subprocess.Popen[bytes]
    port: int
    spool: Path
    log: Path
    started_mb: dict[str, float]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def store(self, paths: list[Path]) -> list[int | None]:
        """Send each file's bytes as they are; the status answered for each (None: no answer)."""
        return mutants.send_raw(self.port, paths, called_ae=RECEIVER_AE, calling_ae=SENDER_AE)


@pytest.fixture(scope="module")
def receiver(django_db_setup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReceiverProcess]:
    workdir = tmp_path_factory.mktemp("bad-input-receiver")
    port, log = free_port(), workdir / "receiver.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DATABASE_URL": database_url(),
        "DEBUG": "1",
        "SECRET_KEY": "receiver-bad-input-test",
        "SPOOL_DIR": str(workdir / "spool"),
        "DICOM_RECEIVER_ALLOW_LIST_REFRESH": "1",
    }
    env.pop("TMPDIR", None)  # the receiver keeps data sets in flight under its spool
    command = [sys.executable, "manage.py", "run_dicom_receiver", "--ae", RECEIVER_AE, "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen([*command, "--bind", "127.0.0.1"], cwd=BASE_DIR, env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while "listening on" not in log.read_text(errors="replace"):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.1)
        time.sleep(0.5)  # settled
        yield ReceiverProcess(proc, port, workdir / "spool" / "receiver", log, memory_mb(proc.pid))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def sender(transactional_db) -> Gateway:
    trust = Trust.objects.create(ods_code="RBI", name="Bad Input Trust")
    return Gateway.objects.create(trust=trust, name="Fuzzer", ae_title=SENDER_AE, host="127.0.0.1", port=104)


def test_corpus_and_mutants_are_stored_as_sent_or_quarantined_with_a_reason(
    receiver: ReceiverProcess, sender: Gateway, tmp_path: Path
) -> None:
    (tmp_path / "corpus").mkdir()
    (tmp_path / "mutants").mkdir()
    files = mutants.corpus(tmp_path / "corpus") + mutants.mutants(tmp_path / "mutants")
    assert len(files) >= 78 + 120

    statuses = receiver.store([f.path for f in files])

    problems: list[str] = []
    outcomes: dict[str, int] = {}
    for bad, status in zip(files, statuses, strict=True):
        what = f"{bad.kind} of {bad.origin} ({bad.path.name})"
        uid, sent = file_meta(bad.path).sop_instance_uid, mutants.wire_sha256(bad.path)
        if status is None:
            problems.append(f"{what}: no answer")
        elif status == 0xA700:
            problems.append(f"{what}: answered 0xA700 (out of resources)")
        elif status == 0:
            stored = ReceivedInstance.objects.filter(sop_instance_uid=uid)
            if not any(Path(r.path).is_file() and dataset_sha256(Path(r.path)) == sent for r in stored):
                problems.append(f"{what}: answered Success but no stored copy holds the data set as sent")
        else:
            kept = QuarantinedInstance.objects.filter(sop_instance_uid=uid, sha256=sent, status=status)
            if not any(q.reason and Path(q.path).is_file() for q in kept):
                problems.append(f"{what}: answered 0x{status:04X} but not quarantined with a reason")
        outcome = "stored" if status == 0 else "quarantined"
        outcomes[f"{bad.kind}: {outcome}"] = outcomes.get(f"{bad.kind}: {outcome}", 0) + 1
    print("\n".join(f"{key}: {count}" for key, count in sorted(outcomes.items())))
    assert not problems, "\n".join(problems)
    assert receiver.alive(), receiver.log.read_text(errors="replace")[-3000:]
    assert receiver.store([files[0].path]) != [None]  # still answering
    assert QuarantinedInstance.objects.count() >= 100  # the corpus's damaged files and most mutants


def test_a_256_mb_instance_leaves_the_receivers_memory_where_it_started(
    receiver: ReceiverProcess, sender: Gateway, tmp_path: Path
) -> None:
    """One 256 MB instance took the receiver from 142 to 399 MB when data sets were held whole in memory."""
    big = big_ct(tmp_path / "big.dcm")
    before = memory_mb(receiver.proc.pid)
    assert receiver.store([big]) == [0]
    after = memory_mb(receiver.proc.pid)
    print(f"receiver memory MB: at start {receiver.started_mb}, before {before}, after {after}")
    assert after["VmRSS"] - receiver.started_mb["VmRSS"] < 50
    assert after["VmHWM"] - before["VmRSS"] < 50  # its peak while taking the instance in, not only after
    (row,) = ReceivedInstance.objects.filter(sop_instance_uid=file_meta(big).sop_instance_uid)
    assert row.size > 256 * 1024 * 1024 and dataset_sha256(Path(row.path)) == dataset_sha256(big)
    assert not list((receiver.spool / "in-flight").iterdir())  # pynetdicom's spooled copy is gone


def big_ct(out: Path, rows: int = 8192, columns: int = 16384) -> Path:
    """A 16-bit CT of 256 MiB of pixels, written without holding it in memory."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.Modality = "Synthetic^Large", "BIG0001", "CT"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, columns, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.save_as(out, enforce_file_format=True)
    size = rows * columns * 2
    block = bytes(range(256)) * 4096
    with out.open("ab") as fh:
        fh.write(b"\xe0\x7f\x10\x00OW\x00\x00" + size.to_bytes(4, "little"))
        for start in range(0, size, len(block)):
            fh.write(block[: min(len(block), size - start)])
    return out
