from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from pydicom import dcmread
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit, JPEGLSLossless, RLELossless

from dicomkit import nhs
from dicomkit.identity import nhs_number_of
from dicomkit.sim.synthetic import SyntheticPatient, make_study
from dicomkit.validate import inspect_file
from exchange.management.commands.make_synthetic_study import Command


def test_ct_is_512_square_int16_with_hu_rescale(tmp_path: Path) -> None:
    paths = make_study(tmp_path, modality="CT", n_instances=3, seed=1)
    ds = dcmread(paths[0])
    assert (ds.Rows, ds.Columns, ds.RescaleIntercept) == (512, 512, -1024)
    assert ds.pixel_array.dtype == np.int16
    assert len({dcmread(p).SeriesInstanceUID for p in paths}) == 1


def test_mr_has_several_series(tmp_path: Path) -> None:
    paths = make_study(tmp_path, modality="MR", n_instances=6, seed=1)
    assert len({dcmread(p).SeriesInstanceUID for p in paths}) == 3


def test_cr_is_a_large_single_frame(tmp_path: Path) -> None:
    (path,) = make_study(tmp_path, modality="CR", n_instances=1, seed=1)
    ds = dcmread(path)
    assert (ds.Rows, ds.Columns) == (2500, 2000)


@pytest.mark.parametrize(
    ("codec", "syntax"),
    [
        ("jpeg-baseline", JPEGBaseline8Bit),
        ("jpeg2000", JPEG2000Lossless),
        ("jpeg-ls", JPEGLSLossless),
        ("rle", RLELossless),
    ],
)
def test_compressed_studies_decode(tmp_path: Path, codec: str, syntax: str) -> None:
    (path,) = make_study(tmp_path, modality="CT", n_instances=1, rows=128, columns=128, compress=codec, seed=2)
    ds = dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == syntax
    assert ds.pixel_array.shape == (128, 128)
    inspect_file(path)


def test_lossless_codecs_keep_every_pixel(tmp_path: Path) -> None:
    (plain,) = make_study(tmp_path / "a", n_instances=1, rows=128, columns=128, seed=5)
    (packed,) = make_study(tmp_path / "b", n_instances=1, rows=128, columns=128, seed=5, compress="jpeg-ls")
    assert np.array_equal(dcmread(plain).pixel_array, dcmread(packed).pixel_array)


@pytest.mark.parametrize("store", ["patientid", "other-ids"])
def test_the_nhs_number_is_found_wherever_it_is_stored(tmp_path: Path, store: str) -> None:
    patient = SyntheticPatient.random()
    (path,) = make_study(tmp_path, n_instances=1, rows=32, columns=32, patient=patient, nhs_store=store)
    ds = dcmread(path)
    assert nhs.is_valid(patient.nhs_number) and patient.nhs_number.startswith("999")
    assert nhs_number_of(ds) == patient.nhs_number
    assert (ds.PatientID == patient.nhs_number) == (store == "patientid")


def test_names_are_written_in_the_chosen_character_set(tmp_path: Path) -> None:
    patient = SyntheticPatient(nhs.synthetic(), "Llŷr", "Dafydd")
    (path,) = make_study(tmp_path, n_instances=1, rows=32, columns=32, patient=patient, charset="ISO_IR 192")
    assert "Llŷr".encode() in path.read_bytes()
    assert str(dcmread(path).PatientName) == "Llŷr^Dafydd"


def test_a_name_latin1_cannot_hold_is_refused(tmp_path: Path) -> None:
    patient = SyntheticPatient(nhs.synthetic(), "Llŷr", "Dafydd")
    with pytest.raises(ValueError, match="ISO_IR 192"):
        make_study(tmp_path, n_instances=1, patient=patient, charset="ISO_IR 100")


def test_the_command_writes_studies(tmp_path: Path) -> None:
    call_command(
        Command(),
        out=str(tmp_path),
        modality="MR",
        instances=3,
        studies=2,
        compress="rle",
        patient_name="Evans^Gareth",
        nhs_number="943 476 5919",
        rows=64,
        columns=64,
    )
    files = sorted(tmp_path.rglob("*.dcm"))
    assert len(files) == 6
    assert {str(dcmread(f).PatientName) for f in files} == {"Evans^Gareth"}
