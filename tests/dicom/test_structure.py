"""The fast structural walk that checks most instances: it must read whole files as pydicom does, and
refuse every file that ends before its own headers say it does."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from dicomkit import structure
from dicomkit.errors import InvalidInstance
from dicomkit.sim.synthetic import COMPRESSIONS, make_study
from dicomkit.validate import inspect_file

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

KINDS = [("CT", None), ("MR", None), ("CR", None)] + [("CT", codec) for codec in COMPRESSIONS]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("kinds")
    paths: list[Path] = []
    for n, (modality, codec) in enumerate(KINDS):
        paths += make_study(out / str(n), modality=modality, n_instances=1, rows=64, columns=64, compress=codec, seed=n)
    return paths


def test_the_walk_reads_what_pydicom_reads(files: list[Path]) -> None:
    for path in files:
        facts = structure.scan(path)
        ds = dcmread(path)
        assert facts is not None, path
        assert (facts.sop_instance_uid, facts.sop_class_uid, facts.study, facts.series) == (
            ds.SOPInstanceUID,
            ds.SOPClassUID,
            ds.StudyInstanceUID,
            ds.SeriesInstanceUID,
        )
        assert (facts.rows, facts.columns, facts.bits_allocated) == (ds.Rows, ds.Columns, ds.BitsAllocated)
        assert facts.transfer_syntax_uid == ds.file_meta.TransferSyntaxUID
        if ds.file_meta.TransferSyntaxUID.is_encapsulated:
            assert facts.fragments is not None and facts.fragments >= 2
        else:
            assert facts.pixel_data_bytes == len(ds.PixelData)


def test_a_file_cut_anywhere_is_refused(files: list[Path], tmp_path: Path) -> None:
    for path in (files[0], files[-1]):  # native and encapsulated Pixel Data
        data = path.read_bytes()
        for cut in range(200, len(data) - 1, max(1, len(data) // 60)):
            short = tmp_path / "short.dcm"
            short.write_bytes(data[:cut])
            with pytest.raises(InvalidInstance):
                inspect_file(short)


def test_a_truncation_pydicom_reads_without_complaint_is_refused() -> None:
    path = get_testdata_file("rtplan_truncated.dcm")
    dcmread(path)  # pydicom's own damaged test file: it reads it
    with pytest.raises(InvalidInstance, match="truncated"):
        inspect_file(path)


def test_a_file_whose_meta_names_the_wrong_vr_encoding_is_still_accepted(tmp_path: Path) -> None:
    # pydicom's test file: the meta says explicit VR but the data set is implicit; pydicom reads it, so must we.
    path = Path(shutil.copy(get_testdata_file("SC_rgb_jpeg.dcm"), tmp_path / "sc.dcm"))
    assert structure.scan(path) is not None
    assert inspect_file(path).sop_class_uid == "1.2.840.10008.5.1.4.1.1.7"


def test_the_file_meta_is_read_without_pydicom(files: list[Path]) -> None:
    meta = structure.read_meta(files[0])
    assert meta is not None and meta.sop_instance_uid == files[0].stem
    assert structure.read_meta(__file__) is None  # not DICOM at all
