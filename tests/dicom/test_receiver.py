"""The portal's receiver: durable, byte-exact, idempotent; bad input refused, recorded, survived."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.filereader import read_file_meta_info

from dicomkit import GatewayConfig, StorageReceiver, StoreResult, client_for
from dicomkit.moves import MoveJob
from dicomkit.sim.synthetic import make_study
from dicomkit.spool import dataset_sha256
from dicomkit.validate import CANNOT_UNDERSTAND, DATASET_MISMATCH, DUPLICATE_CONFLICT, SOP_CLASS_NOT_SUPPORTED
from reconciliation.rewrite import Rewrite, rewrite_file

from . import badfiles
from .conftest import PORTAL_AE, Recorder
from .orthanc import free_port

pytestmark = [pytest.mark.interop, pytest.mark.filterwarnings("ignore::UserWarning")]


def send(rx: StorageReceiver, *paths: Path, ae: str | None = None) -> list[StoreResult]:
    cfg = GatewayConfig(ae_title=ae or rx.ae_title, host="127.0.0.1", port=rx.port, label=f"receiver {rx.ae_title}")
    return client_for(cfg, local_ae_title="TESTSCU").store(paths)


@pytest.fixture(scope="module")
def ct(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_study(tmp_path_factory.mktemp("rx"), n_instances=1, rows=128, columns=128, seed=99)[0]


def sidecar_for(rx: StorageReceiver, sop_uid: str) -> dict[str, object]:
    for path in rx.quarantine_dir.glob("*.json"):
        record = json.loads(path.read_text())
        if record["sop_instance_uid"] == sop_uid:
            return record
    raise AssertionError(f"no quarantine record for {sop_uid}")


@pytest.mark.parametrize(
    ("damage", "status", "reason"),
    [
        (badfiles.truncated, DATASET_MISMATCH, "Pixel Data holds"),
        (badfiles.without_sop_instance_uid, DATASET_MISMATCH, "no SOP Instance UID"),
        (badfiles.with_unknown_sop_class, SOP_CLASS_NOT_SUPPORTED, "not a known storage SOP class"),
        (badfiles.unparseable, CANNOT_UNDERSTAND, "could not be parsed"),
    ],
)
def test_bad_instances_are_refused_and_quarantined(
    receiver: StorageReceiver,
    recorder: Recorder,
    ct: Path,
    tmp_path: Path,
    damage: Callable[[Path, Path], Path],
    status: int,
    reason: str,
) -> None:
    bad = damage(ct, tmp_path / "bad.dcm")
    sop = str(read_file_meta_info(bad).MediaStorageSOPInstanceUID)
    (result,) = send(receiver, bad)
    assert not result.ok and result.status == status
    assert f"0x{status:04X}" in result.message and "receiver PORTAL" in result.message
    record = sidecar_for(receiver, sop)
    assert reason in str(record["reason"]) and record["calling_ae"] == "TESTSCU"
    assert record["status"] == f"0x{status:04X}" and str(record["received_at"]).endswith("Z")
    assert Path(str(record["path"])).read_bytes()[128:132] == b"DICM"
    assert any(q.sop_instance_uid == sop for q in recorder.quarantined)
    assert not list(receiver.incoming_dir.rglob(f"{sop}.dcm"))
    # ...and the receiver is still there for the next sender.
    assert (
        client_for(GatewayConfig(ae_title=PORTAL_AE, host="127.0.0.1", port=receiver.port), local_ae_title="TESTSCU")
        .echo()
        .ok
    )


def test_the_data_set_is_stored_exactly_as_it_was_sent(receiver: StorageReceiver, tmp_path: Path) -> None:
    (path,) = make_study(tmp_path, n_instances=1, rows=64, columns=64, compress="rle")
    (result,) = send(receiver, path)
    assert result.ok
    (stored,) = receiver.incoming_dir.rglob(path.name)
    assert dataset_sha256(stored) == dataset_sha256(path)
    assert dcmread(stored).file_meta.SourceApplicationEntityTitle == "TESTSCU"


def test_the_same_instance_twice_is_stored_once(receiver: StorageReceiver, recorder: Recorder, tmp_path: Path) -> None:
    (path,) = make_study(tmp_path, n_instances=1, rows=32, columns=32)
    first, second = send(receiver, path) + send(receiver, path)
    assert first.ok and second.ok
    assert len(list(receiver.incoming_dir.rglob(path.name))) == 1
    assert [a.duplicate for a in recorder.arrivals_for(path.stem)] == [False, True]


def test_other_content_under_a_known_uid_is_quarantined(receiver: StorageReceiver, tmp_path: Path) -> None:
    (path,) = make_study(tmp_path, n_instances=1, rows=32, columns=32)
    changed = badfiles.changed_body(path, tmp_path / "changed.dcm")
    assert send(receiver, path)[0].ok
    (result,) = send(receiver, changed)
    # 0x0111: the receiver holds an instance under this UID (it keeps its first copy, quarantines this
    # one); a sender reads it as "already present" (issue #19 point 5), never as a new copy stored.
    assert result.status == DUPLICATE_CONFLICT and result.already_present
    assert "different content" in str(sidecar_for(receiver, path.stem)["reason"])
    (kept,) = receiver.incoming_dir.rglob(path.name)
    assert dataset_sha256(kept) == dataset_sha256(path)


def test_a_failing_hook_makes_the_sender_retry(tmp_path: Path) -> None:
    calls: list[bool] = []

    def flaky(arrival: object) -> None:
        calls.append(True)
        if len(calls) == 1:
            raise RuntimeError("database is down")

    rx = StorageReceiver("HOOKRX", free_port(), tmp_path / "rx", bind_address="127.0.0.1", on_arrival=flaky).start()
    try:
        (path,) = make_study(tmp_path / "src", n_instances=1, rows=32, columns=32)
        (first,) = send(rx, path)
        assert not first.ok and first.status == 0xA700 and not first.permanent
        (retry,) = send(rx, path)
        assert retry.ok and len(calls) == 2
        assert len(list(rx.incoming_dir.rglob(path.name))) == 1
    finally:
        rx.stop()


def test_a_wrong_called_ae_title_is_refused(receiver: StorageReceiver, ct: Path) -> None:
    from dicomkit import AssociationRejected

    with pytest.raises(AssociationRejected, match="called AE title not recognised") as caught:
        send(receiver, ct, ae="NOTPORTAL")
    assert caught.value.permanent


def test_only_listed_callers_may_send(tmp_path: Path, ct: Path) -> None:
    from dicomkit import AssociationRejected

    rx = StorageReceiver("GATED", free_port(), tmp_path, bind_address="127.0.0.1", allowed_calling_aes=["RXHPACS"])
    with rx, pytest.raises(AssociationRejected, match="calling AE title not recognised"):
        send(rx, ct)


def _move_job(rx: StorageReceiver, folder: Path, path: Path) -> MoveJob:
    """What a worker's C-MOVE registers with the receiver: arrivals of this study land in `folder`."""
    return rx.registry.register(MoveJob(spool_dir=folder, study_instance_uid=str(dcmread(path).StudyInstanceUID)))


def test_a_push_of_an_instance_an_earlier_move_job_took_in_is_kept(
    receiver: StorageReceiver, recorder: Recorder, tmp_path: Path
) -> None:
    """The job's folder is emptied by its worker; Success for a later push must mean a copy is held."""
    (path,) = make_study(tmp_path / "study", n_instances=1, rows=32, columns=32)
    job = _move_job(receiver, tmp_path / "job", path)
    assert send(receiver, path)[0].ok
    receiver.registry.remove(job)
    shutil.rmtree(tmp_path / "job")  # moved on and sent by the worker

    assert send(receiver, path)[0].ok

    pushed = recorder.arrivals_for(path.stem)[-1]
    assert pushed.path.exists() and pushed.path.is_relative_to(receiver.incoming_dir) and not pushed.duplicate
    assert dataset_sha256(pushed.path) == dataset_sha256(path)


def test_a_later_move_job_takes_an_instance_again_after_a_trust_reconciled_it(
    receiver: StorageReceiver, tmp_path: Path
) -> None:
    """Reconciliation gives the patient the receiving trust's ID and keeps the UIDs: moving that copy on
    later is not a conflict with the original the receiver once saw."""
    (path,) = make_study(tmp_path / "study", n_instances=1, rows=32, columns=32)
    first = _move_job(receiver, tmp_path / "first", path)
    assert send(receiver, path)[0].ok
    receiver.registry.remove(first)
    reconciled = tmp_path / "reconciled.dcm"
    shutil.copy(path, reconciled)
    rewrite_file(reconciled, Rewrite(patient_id="RBB0001", issuer="RBB_MRN"))
    second = _move_job(receiver, tmp_path / "second", path)
    try:
        assert send(receiver, reconciled)[0].ok
    finally:
        receiver.registry.remove(second)
    (landed,) = (tmp_path / "second").rglob("*.dcm")
    assert dcmread(landed).PatientID == "RBB0001"


def test_within_one_move_job_a_repeat_is_kept_once_and_other_content_is_quarantined(
    receiver: StorageReceiver, tmp_path: Path
) -> None:
    (path,) = make_study(tmp_path / "study", n_instances=1, rows=32, columns=32)
    changed = badfiles.changed_body(path, tmp_path / "changed.dcm")
    job = _move_job(receiver, tmp_path / "job", path)
    try:
        assert send(receiver, path)[0].ok and send(receiver, path)[0].ok
        (result,) = send(receiver, changed)
    finally:
        receiver.registry.remove(job)
    assert result.status == DUPLICATE_CONFLICT and result.already_present
    (kept,) = (tmp_path / "job").rglob("*.dcm")
    assert dataset_sha256(kept) == dataset_sha256(path)


def test_an_instance_the_checks_cannot_read_is_quarantined_not_answered_out_of_resources(
    receiver: StorageReceiver, recorder: Recorder, tmp_path: Path
) -> None:
    """Rows read as many values made the checks raise; the sender got 0xA700 and retried for ever."""
    from pydicom.data import get_testdata_file

    source = Path(get_testdata_file("MR_small_jpeg_ls_lossless.dcm"))
    bad = badfiles.with_element_length(source, tmp_path / "rows.dcm", (0x0028, 0x0010), 0xFFFF)
    sop = str(read_file_meta_info(bad).MediaStorageSOPInstanceUID)
    (result,) = send(receiver, bad)
    assert not result.ok and result.status != 0xA700 and result.permanent
    record = sidecar_for(receiver, sop)
    assert "Rows" in str(record["reason"])
    assert Path(str(record["path"])).read_bytes()[-1000:] == bad.read_bytes()[-1000:]
    assert any(q.sop_instance_uid == sop for q in recorder.quarantined)


def test_an_image_our_decoders_cannot_decode_is_stored_as_sent_and_flagged(
    receiver: StorageReceiver, recorder: Recorder, tmp_path: Path
) -> None:
    """pydicom's JPEG-lossy.dcm is a real 12-bit JPEG that libjpeg and Pillow here refuse: never dropped."""
    from pydicom.data import get_testdata_file

    source = Path(get_testdata_file("JPEG-lossy.dcm"))
    lossy = tmp_path / "lossy.dcm"
    lossy.write_bytes(badfiles.renamed(source.read_bytes(), source))
    sop = str(read_file_meta_info(lossy).MediaStorageSOPInstanceUID)
    (result,) = send(receiver, lossy)
    assert result.ok
    (arrival,) = recorder.arrivals_for(sop)
    assert "did not decode with the portal's decoders" in arrival.pixel_warning
    assert dataset_sha256(arrival.path) == dataset_sha256(lossy)


def test_a_frame_header_bit_flip_is_quarantined(receiver: StorageReceiver, tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    bad = badfiles.flipped_in_first_frame(Path(get_testdata_file("MR_small_RLE.dcm")), tmp_path / "rle.dcm", 0, 0)
    sop = str(read_file_meta_info(bad).MediaStorageSOPInstanceUID)
    (result,) = send(receiver, bad)
    assert not result.ok and result.status == DATASET_MISMATCH
    assert "segments" in str(sidecar_for(receiver, sop)["reason"])
