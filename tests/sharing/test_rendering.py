"""Rendered images match a reference rendering computed here, straight from DICOM PS3.3 C.11.2.1.2.

The reference reads stored values from the PixelData bytes with numpy (not through pydicom's pixel
handlers) and applies the standard's piecewise formulas literally, so it shares no code with the
engine under test.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, RLELossless, generate_uid
from pynetdicom.sop_class import BasicTextSRStorage, ComputedRadiographyImageStorage, CTImageStorage

from dicomkit import rendering
from dicomkit.rendering import PRESETS, RenderError, default_window, render, thumbnail
from dicomkit.sim.synthetic import make_study


@pytest.fixture(autouse=True)
def _cold_caches():
    rendering.clear_caches()
    yield
    rendering.clear_caches()


# --- the reference -------------------------------------------------------------------------------


def stored_values(path: Path) -> np.ndarray:
    """Stored pixel values read directly from uncompressed little-endian PixelData."""
    ds = dcmread(path)
    dtype = {(8, 0): np.uint8, (16, 0): np.uint16, (16, 1): np.int16}[(ds.BitsAllocated, ds.PixelRepresentation)]
    frames = int(ds.get("NumberOfFrames", 1))
    return np.frombuffer(ds.PixelData, dtype=dtype).reshape(frames, ds.Rows, ds.Columns)


def reference(x: np.ndarray, c: float, w: float, function: str = "LINEAR", *, inverse: bool = False) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 (LINEAR), C.11.2.1.3.2 (LINEAR_EXACT, SIGMOID) with ymin 0, ymax 255."""
    x = x.astype(np.float64)
    if function == "LINEAR":
        ramp = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255
        y = np.where(x <= c - 0.5 - (w - 1) / 2, 0.0, np.where(x > c - 0.5 + (w - 1) / 2, 255.0, ramp))
    elif function == "LINEAR_EXACT":
        ramp = ((x - c) / w + 0.5) * 255
        y = np.where(x <= c - w / 2, 0.0, np.where(x > c + w / 2, 255.0, ramp))
    else:
        y = 255 / (1 + np.exp(-4 * (x - c) / w))
    if inverse:
        y = 255 - y
    return y


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def assert_matches(data: bytes, expected: np.ndarray) -> None:
    actual = decoded(data).astype(np.int32)
    assert actual.shape == expected.shape
    assert np.abs(actual - expected).max() <= 1


# --- datasets -------------------------------------------------------------------------------------


def image_file(folder: Path, pixels: np.ndarray, **attributes) -> Path:
    """A single- or multi-frame image whose PixelData is `pixels` (frames, rows, columns) as stored."""
    if pixels.ndim == 2:
        pixels = pixels[np.newaxis]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = attributes.pop("SOPClassUID", CTImageStorage)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality = "CT"
    ds.Rows, ds.Columns = pixels.shape[1:3]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    ds.PixelRepresentation = int(pixels.dtype.kind == "i")
    if pixels.shape[0] > 1:
        ds.NumberOfFrames = pixels.shape[0]
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.PixelData = pixels.tobytes()
    path = folder / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def ramp(low: int, high: int, dtype, shape=(64, 64)) -> np.ndarray:
    """Every value from low to high, so each branch of the window function is exercised."""
    return np.linspace(low, high, shape[0] * shape[1]).round().astype(dtype).reshape(shape)


@pytest.fixture
def synthetic_ct(tmp_path) -> Path:
    """The project's synthetic head CT: int16 storage, RescaleIntercept -1024, window 40/80."""
    return make_study(tmp_path / "plain", modality="CT", n_instances=3, rows=96, columns=96, seed=11)[1]


@pytest.fixture
def unsigned_ct(tmp_path) -> Path:
    return image_file(
        tmp_path, ramp(0, 4095, np.uint16), RescaleIntercept=-1024, RescaleSlope=1, WindowCenter=40, WindowWidth=400
    )


@pytest.fixture
def cr_monochrome1(tmp_path) -> Path:
    """A CR stored inverted (high values dark), with a slope and several windows of which the first applies."""
    return image_file(
        tmp_path,
        ramp(0, 4095, np.uint16, shape=(80, 60)),
        SOPClassUID=ComputedRadiographyImageStorage,
        Modality="CR",
        PhotometricInterpretation="MONOCHROME1",
        RescaleSlope=0.5,
        RescaleIntercept=10,
        WindowCenter=[1000, 600],
        WindowWidth=[1200, 300],
    )


# --- greyscale correctness ------------------------------------------------------------------------


def test_a_signed_ct_at_its_own_window_matches_the_reference(synthetic_ct):
    ds = dcmread(synthetic_ct)
    assert ds.PixelRepresentation == 1 and ds.RescaleIntercept == -1024
    hu = stored_values(synthetic_ct)[0] - 1024.0
    assert_matches(render(synthetic_ct), reference(hu, 40, 80))


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_a_signed_ct_at_each_preset_matches_the_reference(synthetic_ct, preset):
    center, width = PRESETS[preset]
    hu = stored_values(synthetic_ct)[0] - 1024.0
    assert_matches(render(synthetic_ct, center=center, width=width), reference(hu, center, width))


def test_an_unsigned_ct_with_an_intercept_matches_the_reference(unsigned_ct):
    hu = stored_values(unsigned_ct)[0] - 1024.0
    assert_matches(render(unsigned_ct), reference(hu, 40, 400))
    assert_matches(render(unsigned_ct, center=-600, width=1500), reference(hu, -600, 1500))


def test_a_monochrome1_cr_is_inverted_after_windowing(cr_monochrome1):
    values = stored_values(cr_monochrome1)[0] * 0.5 + 10
    expected = reference(values, 1000, 1200, inverse=True)
    assert_matches(render(cr_monochrome1), expected)
    assert decoded(render(cr_monochrome1))[0, 0] == 255  # the lowest stored value is white in MONOCHROME1


def test_a_signed_image_with_negative_stored_values_matches_the_reference(tmp_path):
    path = image_file(tmp_path, ramp(-2000, 2000, np.int16), RescaleSlope=2, RescaleIntercept=-100)
    values = stored_values(path)[0] * 2.0 - 100
    assert_matches(render(path, center=-500, width=3000), reference(values, -500, 3000))


@pytest.mark.parametrize("function", ["LINEAR_EXACT", "SIGMOID"])
def test_the_files_voi_lut_function_is_honoured(tmp_path, function):
    path = image_file(tmp_path, ramp(0, 1000, np.uint16), WindowCenter=500, WindowWidth=301, VOILUTFunction=function)
    values = stored_values(path)[0].astype(np.float64)
    assert_matches(render(path), reference(values, 500, 301, function))
    assert_matches(render(path, center=200, width=100), reference(values, 200, 100, function))


def test_a_width_of_one_is_a_threshold_at_center_minus_a_half(tmp_path):
    path = image_file(tmp_path, np.array([[9, 10, 11, 12]], np.uint16))
    assert decoded(render(path, center=11, width=1)).tolist() == [[0, 0, 255, 255]]


def test_without_a_window_the_frames_range_fills_black_to_white(tmp_path):
    path = image_file(tmp_path, ramp(100, 900, np.uint16), RescaleIntercept=-50)
    image = decoded(render(path))
    assert image.min() == 0 and image.max() == 255
    assert image[0, 0] == 0 and image[-1, -1] == 255
    assert default_window(path) == pytest.approx((450.5, 801.0))


def test_one_window_value_alone_keeps_the_other_from_the_file(unsigned_ct):
    hu = stored_values(unsigned_ct)[0] - 1024.0
    assert_matches(render(unsigned_ct, width=1000), reference(hu, 40, 1000))
    assert_matches(render(unsigned_ct, center=300), reference(hu, 300, 400))


def test_a_voi_lut_table_is_applied_when_the_file_has_no_window(tmp_path):
    table = Dataset()
    table.LUTDescriptor = [256, 0, 8]
    table.LUTData = list(range(255, -1, -1))  # an inverting table over stored values 0..255
    table["LUTData"].VR = "US"
    path = image_file(tmp_path, ramp(0, 300, np.uint16, shape=(16, 16)), VOILUTSequence=[table])
    stored = stored_values(path)[0].astype(np.int64)
    assert_matches(render(path), 255 - np.clip(stored, 0, 255))


# --- default window and presets -------------------------------------------------------------------


def test_default_window_is_the_files_first_window(synthetic_ct, cr_monochrome1):
    assert default_window(synthetic_ct) == (40.0, 80.0)
    assert default_window(cr_monochrome1) == (1000.0, 1200.0)


def test_the_ct_presets_are_the_agreed_ones():
    assert PRESETS == {
        "lung": (-600, 1500),
        "bone": (300, 1500),
        "soft tissue": (40, 400),
        "brain": (40, 80),
    }


# --- transfer syntaxes and frames -----------------------------------------------------------------


@pytest.mark.parametrize("compression", ["rle", "jpeg-ls", "jpeg2000"])
def test_a_losslessly_compressed_ct_renders_as_the_uncompressed_one(tmp_path, compression):
    plain = make_study(tmp_path / "plain", modality="CT", n_instances=2, rows=64, columns=64, seed=5)[0]
    packed = make_study(
        tmp_path / compression, modality="CT", n_instances=2, rows=64, columns=64, seed=5, compress=compression
    )[0]
    assert dcmread(packed).file_meta.TransferSyntaxUID.is_compressed
    for window in ({}, {"center": -600, "width": 1500}):
        assert np.array_equal(decoded(render(packed, **window)), decoded(render(plain, **window)))


def test_a_jpeg_baseline_ct_renders_through_its_modality_lut(tmp_path):
    path = make_study(tmp_path, modality="CT", n_instances=1, rows=64, columns=64, seed=5, compress="jpeg-baseline")[0]
    ds = dcmread(path)
    image = decoded(render(path, center=40, width=400))
    assert image.shape == (64, 64) and ds.BitsStored == 8
    assert image.min() == 0 and image.max() == 255  # air below the window, skull above it


def test_an_rle_multiframe_renders_the_requested_frame(tmp_path):
    frames = np.stack([np.full((8, 8), value, np.uint16) for value in (0, 500, 1000)])
    path = image_file(tmp_path, frames, WindowCenter=500, WindowWidth=1001)
    ds = dcmread(path)
    ds.compress(RLELossless)
    ds.save_as(path)
    assert [int(decoded(render(path, frame))[0, 0]) for frame in range(3)] == [0, 128, 255]


def test_multiframe_selects_each_frame(tmp_path):
    frames = np.stack([ramp(0, 255, np.uint8, shape=(16, 16)) + offset for offset in (0, 0, 0)])
    frames[1] = 255 - frames[1]
    frames[2] = 7
    path = image_file(tmp_path, frames, WindowCenter=128, WindowWidth=256)
    values = stored_values(path)
    for index in range(3):
        assert_matches(render(path, index), reference(values[index], 128, 256))


def test_per_frame_functional_groups_give_each_frame_its_rescale_and_window(tmp_path):
    groups = []
    for slope, center in ((1, 100), (2, 300)):
        rescale, window, group = Dataset(), Dataset(), Dataset()
        rescale.RescaleSlope, rescale.RescaleIntercept, rescale.RescaleType = slope, 0, "US"
        window.WindowCenter, window.WindowWidth = center, 200
        group.PixelValueTransformationSequence, group.FrameVOILUTSequence = [rescale], [window]
        groups.append(group)
    frames = np.stack([ramp(0, 400, np.uint16, shape=(16, 16))] * 2)
    path = image_file(tmp_path, frames, PerFrameFunctionalGroupsSequence=groups)
    values = stored_values(path).astype(np.float64)
    assert_matches(render(path, 0), reference(values[0], 100, 200))
    assert_matches(render(path, 1), reference(values[1] * 2, 300, 200))
    assert default_window(path, 1) == (300.0, 200.0)


@pytest.mark.parametrize("frame", [1, 5, -1])
def test_a_frame_out_of_range_is_refused(synthetic_ct, frame):
    with pytest.raises(ValueError, match="frame"):
        render(synthetic_ct, frame)


@pytest.mark.parametrize(
    "params",
    [
        {"width": 0},
        {"width": -5},
        {"center": float("nan")},
        {"width": float("inf")},
        {"max_size": 0},
        {"max_size": 10**6},
        {"fmt": "gif"},
    ],
)
def test_nonsensical_parameters_are_refused(synthetic_ct, params):
    with pytest.raises(ValueError):
        render(synthetic_ct, **params)


def test_an_instance_without_pixels_is_a_render_error(tmp_path):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = BasicTextSRStorage, generate_uid(), "SR"
    path = tmp_path / "sr.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(RenderError):
        render(path)
    (tmp_path / "junk.dcm").write_bytes(b"\0" * 200)
    with pytest.raises(ValueError):
        render(tmp_path / "junk.dcm")


# --- colour, size, format, caching ----------------------------------------------------------------


def test_an_rgb_image_is_rendered_in_colour_as_stored(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, np.arange(8)[:, None] * 30, 10
    path = image_file(tmp_path, np.zeros((8, 8), np.uint8))
    ds = dcmread(path)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.PixelData = rgb.tobytes()
    ds.save_as(path)
    image = Image.open(io.BytesIO(render(path, center=0, width=10)))
    assert image.mode == "RGB" and np.array_equal(np.asarray(image), rgb)


def test_max_size_bounds_the_longer_side(cr_monochrome1):
    assert Image.open(io.BytesIO(render(cr_monochrome1, max_size=40))).size == (30, 40)
    assert Image.open(io.BytesIO(render(cr_monochrome1, max_size=1000))).size == (60, 80)


def test_thumbnail_is_a_small_png(synthetic_ct):
    image = Image.open(io.BytesIO(thumbnail(synthetic_ct, 32)))
    assert image.format == "PNG" and image.size == (32, 32) and image.mode == "L"


def test_jpeg_is_a_close_8_bit_greyscale_rendering(synthetic_ct):
    png, jpeg = decoded(render(synthetic_ct, fmt="png")), decoded(render(synthetic_ct, fmt="jpg"))
    assert Image.open(io.BytesIO(render(synthetic_ct, fmt="jpeg"))).format == "JPEG"
    assert jpeg.shape == png.shape and np.abs(jpeg.astype(int) - png).mean() < 3


def test_a_repeated_render_comes_from_the_cache(synthetic_ct):
    first = render(synthetic_ct, center=40, width=400)
    assert render(synthetic_ct, center=40, width=400) is first
    assert render(synthetic_ct, center=40, width=401) is not first


def test_a_rewritten_file_is_rendered_afresh(tmp_path):
    path = image_file(tmp_path, np.full((4, 4), 10, np.uint16), WindowCenter=50, WindowWidth=101)
    before = decoded(render(path))
    ds = dcmread(path)
    ds.PixelData = np.full((4, 4), 90, np.uint16).tobytes()
    ds.save_as(path)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert decoded(render(path))[0, 0] > before[0, 0]


def test_the_rendered_cache_is_bounded_in_bytes(synthetic_ct, monkeypatch):
    monkeypatch.setattr(rendering._rendered, "budget", 3 * len(render(synthetic_ct)))
    for width in range(100, 120):
        render(synthetic_ct, center=40, width=width)
    assert 0 < len(rendering._rendered) <= 5


def test_a_jpeg_baseline_colour_image_is_shown_in_rgb(tmp_path):
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:8] = (200, 30, 30)
    rgb[8:] = (30, 30, 200)
    buffer = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buffer, format="JPEG", quality=95, subsampling=0)
    path = image_file(tmp_path, np.zeros((16, 16), np.uint8))
    ds = dcmread(path)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "YBR_FULL", 0
    ds.PixelData = encapsulate([buffer.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.save_as(path)
    image = Image.open(io.BytesIO(render(path)))
    assert image.mode == "RGB"
    assert np.abs(np.asarray(image).astype(int) - rgb).max() <= 8


def test_a_palette_colour_image_is_shown_through_its_lookup_tables(tmp_path):
    path = image_file(tmp_path, np.array([[0, 1], [2, 3]], np.uint8))
    ds = dcmread(path)
    ds.PhotometricInterpretation = "PALETTE COLOR"
    tables = {"Red": [0, 65535, 0, 0], "Green": [0, 0, 65535, 0], "Blue": [0, 0, 0, 65535]}
    for colour, values in tables.items():
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [4, 0, 16])
        ds[f"{colour}PaletteColorLookupTableDescriptor"].VR = "US"
        setattr(ds, f"{colour}PaletteColorLookupTableData", np.array(values, "<u2").tobytes())
    ds.save_as(path)
    image = np.asarray(Image.open(io.BytesIO(render(path))))
    assert image.tolist() == [[[0, 0, 0], [255, 0, 0]], [[0, 255, 0], [0, 0, 255]]]


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (7, 2, 3), (1, 9, 3)])
def test_the_png_writer_round_trips_through_pillow(shape):
    pixels = np.random.default_rng(7).integers(0, 256, shape, dtype=np.uint8)
    image = Image.open(io.BytesIO(rendering.png(pixels)))
    assert image.mode == ("RGB" if len(shape) == 3 else "L")
    assert np.array_equal(np.asarray(image), pixels)


def test_a_truncated_file_is_a_render_error_not_a_crash(synthetic_ct, tmp_path):
    damaged = tmp_path / "damaged.dcm"
    damaged.write_bytes(synthetic_ct.read_bytes()[: synthetic_ct.stat().st_size // 2])
    with pytest.raises(RenderError):
        render(damaged)


def test_a_window_given_as_text_is_refused(synthetic_ct):
    with pytest.raises(ValueError):
        render(synthetic_ct, center="40", width=400)
