"""The staged folder's manifest: order, non-image instances, its cache, and the path guard."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom.sop_class import BasicTextSRStorage, CTImageStorage

from dicomkit.sim.synthetic import make_study
from dicomkit.staged import CACHE_NAME, instance_path, is_uid, manifest

STUDY_UID = "1.2.826.0.1.3680043.8.498.1"


def write_instance(
    folder: Path,
    *,
    series: tuple[str, int],
    instance_number: int | None = None,
    z: float | None = None,
    frames: int = 1,
    sop_class: str = CTImageStorage,
) -> str:
    """A small CT slice (or an SR when `sop_class` says so) saved as <folder>/<SOPInstanceUID>.dcm."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Jones^Aoife", "9990000018", "19700101", "F"
    ds.StudyInstanceUID, ds.StudyDate, ds.StudyDescription, ds.AccessionNumber = STUDY_UID, "20240102", "CT", "A1"
    ds.SeriesInstanceUID, ds.SeriesNumber = series
    ds.Modality = "SR" if sop_class == BasicTextSRStorage else "CT"
    if instance_number is not None:
        ds.InstanceNumber = instance_number
    if sop_class != BasicTextSRStorage:
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0, 0, z if z is not None else 0]
        ds.Rows = ds.Columns = 4
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.WindowCenter, ds.WindowWidth = [40, 400], [80, 2000]
        if frames > 1:
            ds.NumberOfFrames = frames
        ds.PixelData = np.zeros((frames, 4, 4), np.uint16).tobytes()
    ds.save_as(folder / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
    return str(ds.SOPInstanceUID)


def uids(series: dict) -> list[str]:
    return [item["sop_instance_uid"] for item in series["instances"]]


def test_it_lists_the_patient_study_and_series_of_a_synthetic_ct(tmp_path):
    paths = make_study(tmp_path, modality="CT", n_instances=6, rows=32, columns=32, seed=3)
    result = manifest(paths[0].parent)
    assert result["patient"]["id"] and result["patient"]["name"] and len(result["patient"]["birth_date"]) == 8
    (study,) = result["studies"]
    assert study["description"] == "CT head" and len(study["date"]) == 8 and study["accession_number"]
    (series,) = study["series"]
    assert series["modality"] == "CT" and series["number"] == 1 and series["description"] == "Axial 2.5mm"
    assert uids(series) == [p.stem for p in paths]  # make_study writes InstanceNumber 1..n in order
    assert series["instances"][0]["frames"] == 1 and series["instances"][0]["window"] == [40.0, 80.0]


def test_it_orders_series_by_number_and_instances_by_number_then_position(tmp_path):
    s1, s2, s10 = (generate_uid(), 1), (generate_uid(), 2), (generate_uid(), 10)
    later = [write_instance(tmp_path, series=s10, instance_number=1)]
    second = [write_instance(tmp_path, series=s2, instance_number=n) for n in (3, 1, 2)]
    first_by_z = [write_instance(tmp_path, series=s1, z=z) for z in (5.0, -5.0, 0.0)]
    tied = write_instance(tmp_path, series=s1, instance_number=1, z=-10.0)

    series = manifest(tmp_path)["studies"][0]["series"]

    assert [s["number"] for s in series] == [1, 2, 10]
    # Numbered instances come first; unnumbered ones follow in order along the slice normal.
    assert uids(series[0]) == [tied, first_by_z[1], first_by_z[2], first_by_z[0]]
    assert uids(series[1]) == [second[1], second[2], second[0]]
    assert uids(series[2]) == later


def test_it_counts_frames_and_takes_the_first_of_several_windows(tmp_path):
    uid = write_instance(tmp_path, series=(generate_uid(), 1), instance_number=1, frames=5)
    (instance,) = manifest(tmp_path)["studies"][0]["series"][0]["instances"]
    assert instance == {"sop_instance_uid": uid, "frames": 5, "window": [40.0, 80.0]}


def test_it_keeps_reports_out_of_image_series_but_lists_them(tmp_path):
    series = (generate_uid(), 1)
    image = write_instance(tmp_path, series=series, instance_number=1)
    report = write_instance(tmp_path, series=(generate_uid(), 99), sop_class=BasicTextSRStorage)
    mixed = write_instance(tmp_path, series=series, instance_number=2, sop_class=BasicTextSRStorage)

    (study,) = manifest(tmp_path)["studies"]

    assert [uids(s) for s in study["series"]] == [[image]]
    assert [d["sop_instance_uid"] for d in study["documents"]] == [mixed, report]
    assert study["documents"][1]["modality"] == "SR"
    assert instance_path(tmp_path, report).is_file()


def test_it_ignores_files_that_are_not_dicom_or_misnamed(tmp_path):
    uid = write_instance(tmp_path, series=(generate_uid(), 1), instance_number=1)
    (tmp_path / "1.2.3.dcm").write_bytes(b"not dicom")
    (tmp_path / "notes.txt").write_text("hello")
    os.link(tmp_path / f"{uid}.dcm", tmp_path / "1.2.4.dcm")
    assert [uids(s) for s in manifest(tmp_path)["studies"][0]["series"]] == [[uid]]


def test_it_caches_the_manifest_in_the_folder(tmp_path):
    write_instance(tmp_path, series=(generate_uid(), 1), instance_number=1)
    first = manifest(tmp_path)
    cache = tmp_path / CACHE_NAME
    stored = json.loads(cache.read_text(encoding="utf-8"))
    assert stored["manifest"] == first

    # Tamper with the cached copy only: an unchanged folder must be answered from the cache.
    stored["manifest"]["patient"]["name"] = "From^Cache"
    cache.write_text(json.dumps(stored), encoding="utf-8")
    assert manifest(tmp_path)["patient"]["name"] == "From^Cache"


def test_a_new_or_removed_file_invalidates_the_cache(tmp_path):
    series = (generate_uid(), 1)
    first = write_instance(tmp_path, series=series, instance_number=1)
    assert uids(manifest(tmp_path)["studies"][0]["series"][0]) == [first]

    second = write_instance(tmp_path, series=series, instance_number=2)
    assert uids(manifest(tmp_path)["studies"][0]["series"][0]) == [first, second]

    (tmp_path / f"{first}.dcm").unlink()
    assert uids(manifest(tmp_path)["studies"][0]["series"][0]) == [second]


def test_a_corrupt_cache_is_rebuilt(tmp_path):
    uid = write_instance(tmp_path, series=(generate_uid(), 1), instance_number=1)
    (tmp_path / CACHE_NAME).write_text("{not json", encoding="utf-8")
    assert uids(manifest(tmp_path)["studies"][0]["series"][0]) == [uid]
    assert json.loads((tmp_path / CACHE_NAME).read_text(encoding="utf-8"))["manifest"]


def test_an_empty_folder_has_an_empty_manifest(tmp_path):
    assert manifest(tmp_path) == {"patient": {"name": "", "id": "", "birth_date": "", "sex": ""}, "studies": []}


def test_instance_path_finds_a_staged_file(tmp_path):
    uid = write_instance(tmp_path, series=(generate_uid(), 1), instance_number=1)
    assert instance_path(tmp_path, uid) == (tmp_path / f"{uid}.dcm").resolve()


@pytest.mark.parametrize(
    "bad",
    [
        "../secret",
        "1.2/../../etc/passwd",
        "/etc/passwd",
        "1.2.3\x00",
        "1.2.3.dcm",
        "1.2.3 ",
        "",
        ".",
        "1." + "2" * 63,
        "\uff11.\uff12",  # full-width digits are digits to str.isdigit, not to DICOM
    ],
)
def test_instance_path_refuses_anything_but_a_uid(tmp_path, bad):
    with pytest.raises(ValueError):
        instance_path(tmp_path, bad)


def test_instance_path_refuses_a_missing_file(tmp_path):
    with pytest.raises(ValueError):
        instance_path(tmp_path, "1.2.3.4")


def test_instance_path_refuses_a_symlink_leading_out_of_the_folder(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    uid = write_instance(outside, series=(generate_uid(), 1), instance_number=1)
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / f"{uid}.dcm").symlink_to(outside / f"{uid}.dcm")
    with pytest.raises(ValueError):
        instance_path(staged, uid)


def test_is_uid_accepts_the_longest_valid_uid():
    assert is_uid("1." + "2" * 62)
    assert not is_uid("1." + "2" * 63)


def test_a_quiet_folder_is_answered_from_memory_until_it_changes(tmp_path, monkeypatch):
    series = (generate_uid(), 1)
    first = write_instance(tmp_path, series=series, instance_number=1)
    manifest(tmp_path)  # builds and writes the cache
    monkeypatch.setattr("dicomkit.staged.QUIET_NS", -(10**12))  # as if the folder had been quiet for long
    manifest(tmp_path)  # remembered now
    # Remove the cache behind the memo's back, then put the folder's mtime back as it was.
    quiet = tmp_path.stat()
    (tmp_path / CACHE_NAME).unlink()
    os.utime(tmp_path, ns=(quiet.st_atime_ns, quiet.st_mtime_ns))
    monkeypatch.setattr("dicomkit.staged._signature", lambda *a: pytest.fail("the memo should answer"))
    assert uids(manifest(tmp_path)["studies"][0]["series"][0]) == [first]


def test_the_memo_notices_a_new_file(tmp_path, monkeypatch):
    monkeypatch.setattr("dicomkit.staged.QUIET_NS", -(10**12))
    series = (generate_uid(), 1)
    first = write_instance(tmp_path, series=series, instance_number=1)
    manifest(tmp_path)
    manifest(tmp_path)
    before = tmp_path.stat().st_mtime_ns
    second = write_instance(tmp_path, series=series, instance_number=2)
    os.utime(tmp_path, ns=(before + 10**9, before + 10**9))  # a distinct tick, whatever the clock's grain
    assert uids(manifest(tmp_path)["studies"][0]["series"][0]) == [first, second]
