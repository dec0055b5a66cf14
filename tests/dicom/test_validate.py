from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from dicomkit.errors import InvalidInstance
from dicomkit.sim.synthetic import make_study
from dicomkit.validate import CANNOT_UNDERSTAND, DATASET_MISMATCH, SOP_CLASS_NOT_SUPPORTED, inspect_file

from . import badfiles

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def ct(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_study(tmp_path_factory.mktemp("v"), n_instances=1, rows=64, columns=64, seed=3)[0]


@pytest.mark.parametrize(
    ("damage", "status", "words"),
    [
        (badfiles.truncated, DATASET_MISMATCH, "Pixel Data holds"),
        (badfiles.without_sop_instance_uid, DATASET_MISMATCH, "no SOP Instance UID"),
        (badfiles.with_unknown_sop_class, SOP_CLASS_NOT_SUPPORTED, "not a known storage SOP class"),
        (badfiles.unparseable, CANNOT_UNDERSTAND, "could not be parsed"),
    ],
)
def test_it_rejects_damaged_instances(
    ct: Path, tmp_path: Path, damage: Callable[[Path, Path], Path], status: int, words: str
) -> None:
    with pytest.raises(InvalidInstance, match=words) as caught:
        inspect_file(damage(ct, tmp_path / "bad.dcm"))
    assert caught.value.status == status


@pytest.mark.parametrize("codec", ["rle", "jpeg2000", "jpeg-ls", "jpeg-baseline"])
def test_it_rejects_truncated_compressed_pixel_data(tmp_path: Path, codec: str) -> None:
    source = make_study(tmp_path, n_instances=1, rows=64, columns=64, compress=codec, seed=4)[0]
    with pytest.raises(InvalidInstance):
        inspect_file(badfiles.truncated(source, tmp_path / "cut.dcm", cut=30))


def test_it_accepts_a_whole_instance(ct: Path) -> None:
    info = inspect_file(ct)
    assert info.sop_instance_uid == ct.stem


def test_it_notices_a_uid_that_differs_from_the_request(ct: Path) -> None:
    with pytest.raises(InvalidInstance, match="differs from the request"):
        inspect_file(ct, expected_sop_instance_uid="1.2.3")
