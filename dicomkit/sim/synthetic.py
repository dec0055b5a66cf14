"""Realistic synthetic studies for tests, benchmarks and the demo: valid NHS numbers from the 999
test range, plausible anatomy-like phantoms (so compression ratios are realistic), real SOP classes.
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)
from pynetdicom.sop_class import (
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    MRImageStorage,
)

from .. import nhs
from ..identity import OTHER_PATIENT_IDS

COMPRESSIONS: dict[str, UID] = {
    "jpeg-baseline": JPEGBaseline8Bit,
    "jpeg2000": JPEG2000Lossless,
    "jpeg-ls": JPEGLSLossless,
    "rle": RLELossless,
}
NHS_STORES = ("patientid", "other-ids")
CHARSETS = ("ISO_IR 100", "ISO_IR 192")
MODALITIES = ("CT", "MR", "CR", "DX")
_CODECS = {"ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}

_FAMILY = ["Jones", "Williams", "Ó Súilleabháin", "Davies", "Nic Giolla", "Evans", "Smith", "Øvergård", "Khan", "Patel"]
_GIVEN = ["Siobhán", "Dafydd", "Aoife", "Rhys", "Zoë", "Gareth", "Amélie", "Ifan", "Priya", "José"]


@dataclass(frozen=True)
class SyntheticPatient:
    """A made-up patient. `local_id`/`local_issuer` are the holding trust's MRN and its issuer."""

    nhs_number: str
    family_name: str
    given_name: str
    birth_date: str = "19700101"
    sex: str = "O"
    local_id: str = ""
    local_issuer: str = "RXH"

    @property
    def dicom_name(self) -> str:
        return f"{self.family_name}^{self.given_name}"

    @classmethod
    def random(cls, rng: random.Random | None = None, *, local_issuer: str = "RXH") -> SyntheticPatient:
        rng = rng or random.Random()  # noqa: S311 - synthetic test data, not secrets
        born = date(1930, 1, 1) + timedelta(days=rng.randrange(90 * 365))
        return cls(
            nhs_number=nhs.synthetic(rng),
            family_name=rng.choice(_FAMILY),
            given_name=rng.choice(_GIVEN),
            birth_date=born.strftime("%Y%m%d"),
            sex=rng.choice("MF"),
            local_id=f"{local_issuer}{rng.randrange(10**6, 10**7)}",
            local_issuer=local_issuer,
        )


@dataclass
class _Plan:
    modality: str
    sop_class: str
    rows: int
    columns: int
    series: list[tuple[str, int]] = field(default_factory=list)  # (description, instances)


def _plan(modality: str, n_instances: int | None, rows: int | None, columns: int | None) -> _Plan:
    if modality == "CT":
        plan = _Plan("CT", CTImageStorage, rows or 512, columns or 512, [("Axial 2.5mm", n_instances or 40)])
    elif modality == "MR":
        total = n_instances or 30
        names = ["T1 axial", "T2 axial", "FLAIR axial"]
        sizes = [total // 3 + (1 if i < total % 3 else 0) for i in range(3)]
        plan = _Plan(
            "MR", MRImageStorage, rows or 256, columns or 256, [(n, s) for n, s in zip(names, sizes, strict=True) if s]
        )
    elif modality in ("CR", "DX"):
        sop = ComputedRadiographyImageStorage if modality == "CR" else DigitalXRayImageStorageForPresentation
        views = ["PA chest", "Lateral chest"]
        plan = _Plan(modality, sop, rows or 2500, columns or 2000, [(views[i % 2], 1) for i in range(n_instances or 1)])
    else:
        raise ValueError(f"modality must be one of {', '.join(MODALITIES)}, not {modality!r}")
    return plan


def make_study(
    out_dir: Path | str,
    *,
    modality: str = "CT",
    n_instances: int | None = None,
    patient: SyntheticPatient | None = None,
    compress: str | None = None,
    nhs_store: str = "patientid",
    charset: str = "ISO_IR 100",
    study_date: str | None = None,
    accession_number: str | None = None,
    description: str | None = None,
    rows: int | None = None,
    columns: int | None = None,
    seed: int | None = None,
) -> list[Path]:
    """Write one study as `out_dir/<StudyInstanceUID>/<SOPInstanceUID>.dcm`; return the paths.

    CT: 512 x 512 int16, RescaleIntercept -1024, one series. MR: three series. CR/DX: 2500 x 2000
    single frames. `compress` is one of COMPRESSIONS (JPEG baseline stores an 8-bit windowed image).
    `nhs_store` puts the NHS number in PatientID (issuer NHS) or in the Other Patient IDs.
    """
    modality = modality.upper()
    if compress and compress not in COMPRESSIONS:
        raise ValueError(f"compress must be one of {', '.join(COMPRESSIONS)}, not {compress!r}")
    if nhs_store not in NHS_STORES:
        raise ValueError(f"nhs_store must be one of {', '.join(NHS_STORES)}, not {nhs_store!r}")
    if charset not in CHARSETS:
        raise ValueError(f"charset must be one of {', '.join(CHARSETS)}, not {charset!r}")
    rng = random.Random(seed)  # noqa: S311 - synthetic test data, not secrets
    patient = patient or SyntheticPatient.random(rng)
    _check_encodable(patient.dicom_name, charset)
    plan = _plan(modality, n_instances, rows, columns)
    study = _study_dataset(patient, plan, rng, nhs_store, charset, study_date, accession_number, description)
    folder = Path(out_dir) / study.StudyInstanceUID
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for ds in _instances(study, plan, rng):
        if compress:
            _compress(ds, COMPRESSIONS[compress])
        path = folder / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _check_encodable(name: str, charset: str) -> None:
    try:
        name.encode(_CODECS[charset])
    except UnicodeEncodeError as exc:
        raise ValueError(f"the name {name!r} cannot be written in {charset}; use ISO_IR 192 (UTF-8)") from exc


def _study_dataset(
    patient: SyntheticPatient,
    plan: _Plan,
    rng: random.Random,
    nhs_store: str,
    charset: str,
    study_date: str | None,
    accession_number: str | None,
    description: str | None,
) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = charset
    ds.PatientName = patient.dicom_name
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    if nhs_store == "patientid":
        ds.PatientID = patient.nhs_number
        ds.IssuerOfPatientID = "NHS"
    else:
        ds.PatientID = patient.local_id or f"{patient.local_issuer}{rng.randrange(10**6, 10**7)}"
        ds.IssuerOfPatientID = patient.local_issuer
        other = Dataset()
        other.PatientID = patient.nhs_number
        other.IssuerOfPatientID = "NHS"
        other.TypeOfPatientID = "TEXT"
        ds.OtherPatientIDsSequence = Sequence([other])
        # Retired, but it is what C-FIND and QIDO-RS peers match Other Patient IDs on.
        ds.add_new(OTHER_PATIENT_IDS, "LO", patient.nhs_number)
    when = date(2015, 1, 1) + timedelta(days=rng.randrange(3650))
    ds.StudyDate = study_date or when.strftime("%Y%m%d")
    ds.StudyTime = f"{rng.randrange(8, 18):02d}{rng.randrange(60):02d}00"
    ds.AccessionNumber = accession_number or f"{patient.local_issuer}{rng.randrange(10**7, 10**8)}"
    ds.StudyDescription = (
        description or {"CT": "CT head", "MR": "MR brain", "CR": "XR chest", "DX": "XR chest"}[plan.modality]
    )
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[str(rng.random())])
    ds.StudyID = str(rng.randrange(1, 99999))
    ds.ReferringPhysicianName = "Synthetic^Referrer"
    ds.InstitutionName = "Synthetic Trust"
    ds.Manufacturer = "NHS Image Exchange synthetic"
    return ds


def _instances(study: Dataset, plan: _Plan, rng: random.Random) -> Iterator[Dataset]:
    for series_number, (series_description, count) in enumerate(plan.series, start=1):
        series_uid = generate_uid(entropy_srcs=[str(rng.random())])
        for index in range(count):
            ds = Dataset()
            ds.update(study)
            ds.file_meta = FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.SOPClassUID = plan.sop_class
            ds.SOPInstanceUID = generate_uid(entropy_srcs=[str(rng.random())])
            ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.Modality = plan.modality
            ds.SeriesInstanceUID = series_uid
            ds.SeriesNumber = series_number
            ds.SeriesDescription = series_description
            ds.InstanceNumber = index + 1
            ds.ContentDate = ds.SeriesDate = ds.StudyDate
            ds.ContentTime = ds.SeriesTime = ds.StudyTime
            fraction = index / max(count - 1, 1)
            _pixels(ds, plan, fraction, rng, index)
            yield ds


def _pixels(ds: Dataset, plan: _Plan, fraction: float, rng: random.Random, index: int) -> None:
    noise = np.random.default_rng(rng.randrange(2**32))
    ds.Rows, ds.Columns = plan.rows, plan.columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    if plan.modality == "CT":
        hu = _head_phantom(plan.rows, plan.columns, fraction, noise)
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 80
        ds.SliceThickness = 2.5
        ds.ImagePositionPatient = [-125.0, -125.0, round(-60 + 2.5 * index, 2)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [round(250 / plan.columns, 4), round(250 / plan.rows, 4)]
        ds.SliceLocation = ds.ImagePositionPatient[2]
        ds.KVP = 120
        ds.PixelData = (hu + 1024).astype(np.int16).tobytes()
    elif plan.modality == "MR":
        image = _mr_phantom(plan.rows, plan.columns, fraction, ds.SeriesNumber, noise)
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 0
        ds.SliceThickness = 5
        ds.ImagePositionPatient = [-115.0, -115.0, round(-40 + 5 * index, 2)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [round(230 / plan.columns, 4), round(230 / plan.rows, 4)]
        ds.MagneticFieldStrength = 1.5
        ds.PixelData = image.astype(np.uint16).tobytes()
    else:
        image = _chest_phantom(plan.rows, plan.columns, noise)
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 0
        ds.ImagerPixelSpacing = [0.175, 0.175]
        ds.ViewPosition = "PA" if ds.SeriesDescription.startswith("PA") else "LL"
        ds.BodyPartExamined = "CHEST"
        if plan.modality == "DX":
            ds.PresentationIntentType = "FOR PRESENTATION"
        ds.PixelData = image.astype(np.uint16).tobytes()


def _grid(rows: int, columns: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:rows, 0:columns].astype(np.float32)
    return (x - columns / 2) / (columns / 2), (y - rows / 2) / (rows / 2)


def _head_phantom(rows: int, columns: int, z: float, noise: np.random.Generator) -> np.ndarray:
    """HU: air, skull, brain with ventricles; the head narrows towards the vertex."""
    x, y = _grid(rows, columns)
    scale = 0.85 * np.sqrt(max(1 - (z - 0.35) ** 2, 0.2))
    r = np.sqrt((x / (0.8 * scale)) ** 2 + (y / scale) ** 2)
    hu = np.full((rows, columns), -1000.0, np.float32)
    hu[r < 1.0] = 900 + 300 * np.cos(8 * np.arctan2(y, x))[r < 1.0] * 0.1
    hu[r < 0.92] = 35
    vent = ((x / (0.12 * scale)) ** 2 + ((y + 0.1) / (0.3 * scale)) ** 2) < 1
    hu[vent & (r < 0.92)] = 8
    grey = (r > 0.8) & (r < 0.92)
    hu[grey] = 42
    hu += noise.normal(0, 6, hu.shape).astype(np.float32) * (r < 1.0)
    return np.clip(hu, -1024, 3000)


def _mr_phantom(rows: int, columns: int, z: float, series: int, noise: np.random.Generator) -> np.ndarray:
    x, y = _grid(rows, columns)
    r = np.sqrt((x / 0.75) ** 2 + (y / 0.9) ** 2)
    contrast = {1: (900, 500, 200), 2: (600, 900, 1500), 3: (700, 800, 300)}.get(series, (800, 600, 400))
    image = np.zeros((rows, columns), np.float32)
    image[r < 1.0] = contrast[0]
    image[r < 0.9] = contrast[1]
    csf = ((x / 0.1) ** 2 + ((y + 0.1 * z) / 0.25) ** 2) < 1
    image[csf] = contrast[2]
    image += np.abs(noise.normal(0, 20, image.shape)).astype(np.float32)
    return np.clip(image, 0, 4095)


def _chest_phantom(rows: int, columns: int, noise: np.random.Generator) -> np.ndarray:
    x, y = _grid(rows, columns)
    image = np.full((rows, columns), 300.0, np.float32)
    body = (x / 0.9) ** 2 + (y / 1.1) ** 2 < 1
    image[body] = 2400
    for side in (-0.4, 0.4):
        lung = ((x - side) / 0.3) ** 2 + ((y + 0.05) / 0.6) ** 2 < 1
        image[lung] = 900
    ribs = body & (np.sin(y * 30) > 0.85)
    image[ribs] += 600
    spine = np.abs(x) < 0.07
    image[spine & body] = 3300
    image += noise.normal(0, 25, image.shape).astype(np.float32)
    return np.clip(image, 0, 4095)


def _compress(ds: Dataset, syntax: UID) -> None:
    if syntax == JPEGBaseline8Bit:
        _jpeg_baseline(ds)
    else:
        ds.compress(syntax)


def _jpeg_baseline(ds: Dataset) -> None:
    """JPEG baseline holds 8 bits: window the image to 8 bits, as lossy exports do, then encode."""
    pixels = ds.pixel_array.astype(np.float32)
    slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
    values = pixels * slope + intercept
    low, high = np.percentile(values, 1), np.percentile(values, 99.5)
    high = high if high > low else low + 1
    scaled = np.clip((values - low) / (high - low) * 255, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(scaled, mode="L").save(buffer, format="JPEG", quality=90)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.RescaleSlope, ds.RescaleIntercept = round((high - low) / 255, 6), round(low, 3)
    for keyword in ("WindowCenter", "WindowWidth", "RescaleType"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    ds.PixelData = encapsulate([buffer.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
