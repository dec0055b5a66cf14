"""C-STORE and STOW-RS, proven by what the destination then holds; compressed to uncompressed-only peers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import requests
from pydicom import dcmread

from dicomkit import GatewayConfig, StoreResult, client_for
from dicomkit.gateway import GatewayClient
from dicomkit.receiver import StorageReceiver
from dicomkit.sim.pacs import SimulatedPacs
from dicomkit.sim.synthetic import COMPRESSIONS, make_study

from .conftest import PORTAL_AE, orthanc_config, sim_config
from .orthanc import OrthancProcess

pytestmark = pytest.mark.interop

Make = tuple[str, Callable[..., GatewayClient]]


def _ok(results: list[StoreResult]) -> None:
    assert all(r.ok for r in results), [r.message for r in results if not r.ok]


def _held(name: str, request: pytest.FixtureRequest, study_uid: str) -> dict[str, str]:
    """SOP Instance UID -> transfer syntax of what the destination now holds."""
    if name == "orthanc":
        server: OrthancProcess = request.getfixturevalue("orthanc_a")
        return {
            server.instance_tags(oid)["SOPInstanceUID"]: server.instance_metadata(oid, "TransferSyntax")
            for oid in server.find("Instance", {"StudyInstanceUID": study_uid})
        }
    pacs: SimulatedPacs = request.getfixturevalue("sim_pacs")
    pacs_files = (pacs.storage / study_uid).rglob("*.dcm")
    return {p.stem: str(dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID) for p in pacs_files}


def test_c_store_puts_a_study_in_the_pacs(dimse_gateway: Make, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    name, make = dimse_gateway
    paths = make_study(tmp_path, modality="CT", n_instances=5, rows=128, columns=128)
    results = make().store(paths)
    _ok(results)
    assert _held(name, request, paths[0].parent.name) == {p.stem: "1.2.840.10008.1.2.1" for p in paths}


def test_compressed_instances_stay_compressed_where_accepted(
    dimse_gateway: Make, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    name, make = dimse_gateway
    paths = make_study(tmp_path, modality="MR", n_instances=3, rows=64, columns=64, compress="jpeg-ls")
    results = make().store(paths)
    _ok(results)
    assert not any(r.decompressed for r in results)
    assert set(_held(name, request, paths[0].parent.name).values()) == {str(COMPRESSIONS["jpeg-ls"])}


@pytest.mark.parametrize("codec", sorted(COMPRESSIONS))
def test_compressed_studies_reach_a_pacs_that_takes_only_uncompressed(
    plain_sim: SimulatedPacs, tmp_path: Path, codec: str
) -> None:
    paths = make_study(tmp_path, modality="CT", n_instances=2, rows=128, columns=128, compress=codec)
    results = client_for(sim_config(plain_sim), local_ae_title=PORTAL_AE).store(paths)
    _ok(results)
    assert all(r.decompressed and r.transfer_syntax_uid == "1.2.840.10008.1.2.1" for r in results)
    for path in paths:
        (stored,) = (plain_sim.storage / path.parent.name).rglob(path.name)
        held = dcmread(stored)
        assert not held.file_meta.TransferSyntaxUID.is_compressed
        assert np.array_equal(held.pixel_array, dcmread(path).pixel_array)


@pytest.mark.parametrize("codec", ["jpeg2000", "jpeg-baseline"])
def test_compressed_studies_reach_a_receiver_that_takes_only_uncompressed(
    plain_receiver: StorageReceiver, tmp_path: Path, codec: str
) -> None:
    paths = make_study(tmp_path, modality="CR", n_instances=1, rows=600, columns=500, compress=codec)
    cfg = GatewayConfig(ae_title=plain_receiver.ae_title, host="127.0.0.1", port=plain_receiver.port)
    (result,) = client_for(cfg, local_ae_title=PORTAL_AE).store(paths)
    assert result.ok and result.decompressed, result.message
    (stored,) = plain_receiver.incoming_dir.rglob(paths[0].name)
    assert np.array_equal(dcmread(stored).pixel_array, dcmread(paths[0]).pixel_array)


def test_stow_rs_posts_in_batches(orthanc_a: OrthancProcess, tmp_path: Path) -> None:
    paths = make_study(tmp_path, modality="MR", n_instances=7, rows=64, columns=64, compress="rle")
    posts: list[int] = []
    session = requests.Session()
    session.hooks["response"].append(
        lambda r, *a, **k: posts.append(r.status_code) if r.request.method == "POST" else None
    )
    cfg = orthanc_config(orthanc_a, store_method="stow-rs", stow_batch_size=3)
    results = client_for(cfg, local_ae_title=PORTAL_AE, session=session).store(paths)
    _ok(results)
    assert posts == [200, 200, 200]
    held = orthanc_a.find("Instance", {"StudyInstanceUID": paths[0].parent.name})
    assert sorted(orthanc_a.instance_tags(oid)["SOPInstanceUID"] for oid in held) == sorted(p.stem for p in paths)


def test_a_file_that_is_not_dicom_gets_its_own_result(dimse_gateway: Make, tmp_path: Path) -> None:
    _, make = dimse_gateway
    junk = tmp_path / "notes.txt"
    junk.write_text("not an image")
    good = make_study(tmp_path, n_instances=1, rows=32, columns=32)
    bad_result, good_result = make().store([junk, *good])
    assert not bad_result.ok and bad_result.permanent and "not a DICOM file" in bad_result.message
    assert good_result.ok


def test_stow_rs_with_wrong_credentials_is_a_permanent_error(orthanc_a: OrthancProcess, tmp_path: Path) -> None:
    from dicomkit import AuthenticationFailed

    cfg = orthanc_config(orthanc_a, store_method="stow-rs", password="wrong")
    with pytest.raises(AuthenticationFailed, match="credentials were refused") as caught:
        client_for(cfg, local_ae_title=PORTAL_AE).store(make_study(tmp_path, n_instances=1, rows=32, columns=32))
    assert caught.value.permanent


def test_an_image_no_decoder_reads_is_flagged_not_dropped(
    plain_sim: SimulatedPacs, receiver: StorageReceiver, tmp_path: Path
) -> None:
    from pydicom.data import get_testdata_file

    from dicomkit.spool import dataset_sha256

    source = get_testdata_file("JPEG-lossy.dcm")  # 12-bit JPEG extended: the installed decoders refuse it
    assert source is not None
    path = Path(source)
    (refused,) = client_for(sim_config(plain_sim), local_ae_title=PORTAL_AE).store([path])
    assert not refused.ok and refused.permanent
    assert "cannot decompress JPEG Extended (Process 2 and 4) pixel data" in refused.message
    # A destination that takes the syntax gets the bytes untouched: no decoding is needed to store.
    cfg = GatewayConfig(ae_title=receiver.ae_title, host="127.0.0.1", port=receiver.port)
    (stored,) = client_for(cfg, local_ae_title=PORTAL_AE).store([path])
    assert stored.ok and not stored.decompressed
    (landed,) = receiver.incoming_dir.rglob(f"{dcmread(path).SOPInstanceUID}.dcm")
    assert dataset_sha256(landed) == dataset_sha256(path)
