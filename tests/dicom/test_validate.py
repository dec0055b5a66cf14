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


def corpus_file(name: str) -> Path:
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file(name))


@pytest.mark.parametrize(
    ("name", "tag", "keyword"),
    [
        ("MR_small_jpeg_ls_lossless.dcm", (0x0028, 0x0010), "Rows"),
        ("MR_small_jpeg_ls_lossless.dcm", (0x0028, 0x0100), "BitsAllocated"),
        ("CT_small.dcm", (0x0028, 0x0100), "BitsAllocated"),
    ],
)
def test_an_image_attribute_read_as_many_values_is_refused_with_a_reason(
    tmp_path: Path, name: str, tag: tuple[int, int], keyword: str
) -> None:
    """A length of 0xFFFF makes pydicom read Rows or Bits Allocated as a run of values: a refusal that says
    so, never an exception the receiver would answer 0xA700 for."""
    bad = badfiles.with_element_length(corpus_file(name), tmp_path / "bad.dcm", tag, 0xFFFF)
    with pytest.raises(InvalidInstance, match=keyword) as caught:
        inspect_file(bad)
    assert caught.value.status in (CANNOT_UNDERSTAND, DATASET_MISMATCH)


@pytest.mark.parametrize("keyword", ["BitsAllocated", "Rows", "SamplesPerPixel"])
def test_a_well_formed_image_attribute_with_two_values_is_refused(ct: Path, tmp_path: Path, keyword: str) -> None:
    with pytest.raises(InvalidInstance, match=f"{keyword}.*2 values") as caught:
        inspect_file(badfiles.with_two_values(ct, tmp_path / "two.dcm", keyword))
    assert caught.value.status == DATASET_MISMATCH


@pytest.mark.parametrize(
    ("name", "offset", "bit", "words"),
    [
        ("MR_small_RLE.dcm", 0, 0, "3 segments but .* need 2"),  # segment count 2 -> 3
        ("MR_small_RLE.dcm", 4, 3, "segment offsets"),  # first offset 64 -> 72
        ("SC_rgb_rle.dcm", 9, 0, "segment offsets"),  # second offset past the frame
        ("SC_rgb_jpeg_dcmtk.dcm", 1, 0, "SOI"),
        ("SC_rgb_jpeg_dcmtk.dcm", 2, 7, "no marker"),  # APP0's 0xFF -> 0x7F
        ("JPGExtended.dcm", 8, 0, "rows 1025 but the data set says 1024"),  # SOF lines
        ("MR_small_jpeg_ls_lossless.dcm", 10, 1, "columns"),  # SOF55 samples per line
        ("MR_small_jp2klossless.dcm", 11, 2, "JPEG 2000 header gives columns"),  # SIZ Xsiz
    ],
)
def test_a_compressed_frame_whose_header_is_impossible_is_refused(
    tmp_path: Path, name: str, offset: int, bit: int, words: str
) -> None:
    """Header bit flips no decoder could make sense of: accepted before, since only lengths were checked."""
    bad = badfiles.flipped_in_first_frame(corpus_file(name), tmp_path / "flipped.dcm", offset, bit)
    with pytest.raises(InvalidInstance, match=words) as caught:
        inspect_file(bad)
    assert caught.value.status == DATASET_MISMATCH


@pytest.mark.parametrize(
    ("keyword", "value", "words"), [("BitsAllocated", 12, "Bits Allocated is 12"), ("Rows", 0, "0 rows")]
)
def test_an_image_header_no_image_can_have_is_refused(
    ct: Path, tmp_path: Path, keyword: str, value: int, words: str
) -> None:
    from pydicom import dcmread
    from pydicom.uid import generate_uid

    ds = dcmread(ct)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    setattr(ds, keyword, value)
    ds.save_as(tmp_path / "odd.dcm", enforce_file_format=True)
    with pytest.raises(InvalidInstance, match=words):
        inspect_file(tmp_path / "odd.dcm")


@pytest.mark.parametrize(
    "name",
    [
        "SC_ybr_full_422_uncompressed.dcm",  # two samples a pixel: it was refused as "truncated"
        "JPEG-lossy.dcm",  # our decoders cannot decode it; its header is sound
        "examples_jpeg2k.dcm",  # one frame in three fragments
        "GDCMJ2K_TextGBR.dcm",  # JPEG 2000 in a JP2 box
        "SC_rgb_rle_32bit_2frame.dcm",
        "JPEGLSNearLossless_16.dcm",
    ],
)
def test_sound_images_from_pydicoms_corpus_pass_the_checks(name: str) -> None:
    try:
        inspect_file(corpus_file(name))
    except InvalidInstance as refused:  # some lack a Study Instance UID: a refusal, but not about their pixels
        assert "has no Study Instance UID" in refused.reason, refused.reason


def test_an_image_our_decoders_cannot_decode_is_flagged_not_refused() -> None:
    from dicomkit.pixels import decode_problem

    lossy = corpus_file("JPEG-lossy.dcm")
    info = inspect_file(lossy)
    assert info.compressed_frame_bytes == 1024 * 256 * 2
    assert "did not decode with the portal's decoders" in (decode_problem(lossy, info.compressed_frame_bytes) or "")
    sound = corpus_file("JPGExtended.dcm")
    assert decode_problem(sound, inspect_file(sound).compressed_frame_bytes) is None
