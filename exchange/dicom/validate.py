"""Checks an instance must pass before we answer Success for it.

pydicom parses truncated files without complaint, so the pixel data length is checked by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragments
from pydicom.uid import UID
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import uid_to_service_class

from .errors import InvalidInstance

# Status codes (PS3.4 B.2.3 and PS3.7 C): each failure names what is wrong with the data set.
CANNOT_UNDERSTAND = 0xC000
DATASET_MISMATCH = 0xA900
SOP_CLASS_NOT_SUPPORTED = 0x0122
DUPLICATE_CONFLICT = 0x0111
OUT_OF_RESOURCES = 0xA700

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


@dataclass(frozen=True)
class InstanceInfo:
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str


def is_uid(value: str) -> bool:
    return bool(value) and len(value) <= 64 and bool(_UID.match(value))


def inspect_file(
    path: Path | str,
    *,
    expected_sop_instance_uid: str = "",
    expected_sop_class_uid: str = "",
) -> InstanceInfo:
    """Parse and check one instance file; raise InvalidInstance with the status to answer."""
    try:
        ds = dcmread(path)
        for _ in ds.iterall():  # values are converted lazily: force it so damage shows here
            pass
        transfer_syntax = str(ds.file_meta.TransferSyntaxUID)
    except Exception as exc:  # any parse failure, whatever pydicom raises
        raise InvalidInstance(f"the data could not be parsed as DICOM ({exc})", CANNOT_UNDERSTAND) from exc
    if len(ds) == 0:
        # pydicom gives up silently on some damage (e.g. encapsulated Pixel Data cut short).
        raise InvalidInstance("the data set is empty or could not be read: truncated or damaged", CANNOT_UNDERSTAND)
    return inspect_dataset(
        ds,
        transfer_syntax,
        expected_sop_instance_uid=expected_sop_instance_uid,
        expected_sop_class_uid=expected_sop_class_uid,
    )


def inspect_dataset(
    ds: Dataset,
    transfer_syntax: str,
    *,
    expected_sop_instance_uid: str = "",
    expected_sop_class_uid: str = "",
) -> InstanceInfo:
    sop_instance = _uid(ds, "SOPInstanceUID", "SOP Instance UID (0008,0018)")
    sop_class = _uid(ds, "SOPClassUID", "SOP Class UID (0008,0016)")
    if expected_sop_instance_uid and sop_instance != expected_sop_instance_uid.strip("\0 "):
        raise InvalidInstance(
            f"the data set's SOP Instance UID {sop_instance} differs from the request's {expected_sop_instance_uid}",
            DATASET_MISMATCH,
        )
    if uid_to_service_class(sop_class) is not StorageServiceClass:
        raise InvalidInstance(f"SOP Class {sop_class} is not a known storage SOP class", SOP_CLASS_NOT_SUPPORTED)
    if expected_sop_class_uid and sop_class != expected_sop_class_uid.strip("\0 "):
        raise InvalidInstance(
            f"the data set's SOP Class UID {sop_class} differs from the request's {expected_sop_class_uid}",
            DATASET_MISMATCH,
        )
    study = _uid(ds, "StudyInstanceUID", "Study Instance UID (0020,000D)")
    series = _uid(ds, "SeriesInstanceUID", "Series Instance UID (0020,000E)")
    check_pixel_data(ds, transfer_syntax)
    return InstanceInfo(sop_class, sop_instance, study, series, transfer_syntax)


def _uid(ds: Dataset, keyword: str, label: str) -> str:
    value = str(ds.get(keyword, "") or "").strip("\0 ")
    if not value:
        raise InvalidInstance(f"the data set has no {label}", DATASET_MISMATCH)
    if not is_uid(value):
        raise InvalidInstance(f"{label} {value!r} is not a valid UID", DATASET_MISMATCH)
    return value


def expected_pixel_bytes(ds: Dataset) -> int:
    """Rows x Columns x Samples per Pixel x Bits Allocated / 8 x Number of Frames."""
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    bits = int(ds.BitsAllocated)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    pixels = int(ds.Rows) * int(ds.Columns) * samples * frames
    return (pixels * bits + 7) // 8


def check_pixel_data(ds: Dataset, transfer_syntax: str) -> None:
    if "PixelData" not in ds:
        if "Rows" in ds and "Columns" in ds and not ({"FloatPixelData", "DoubleFloatPixelData"} & set(ds.dir())):
            # pydicom drops an encapsulated Pixel Data element cut short by the end of the file.
            raise InvalidInstance(
                "the data set describes an image (Rows, Columns) but has no Pixel Data: the file is probably truncated",
                DATASET_MISMATCH,
            )
        return
    for keyword in ("Rows", "Columns", "BitsAllocated"):
        if keyword not in ds:
            raise InvalidInstance(f"Pixel Data is present but {keyword} is missing", DATASET_MISMATCH)
    pixel_data = ds.PixelData or b""
    if UID(transfer_syntax).is_encapsulated:
        try:
            fragments = sum(1 for _ in generate_fragments(pixel_data))
        except Exception as exc:  # malformed item tags or lengths
            raise InvalidInstance(f"the encapsulated Pixel Data is damaged ({exc})", DATASET_MISMATCH) from exc
        if fragments < 2:  # the Basic Offset Table item plus at least one fragment
            raise InvalidInstance("the encapsulated Pixel Data holds no compressed frames", DATASET_MISMATCH)
        return
    expected = expected_pixel_bytes(ds)
    if len(pixel_data) < expected:
        raise InvalidInstance(
            f"Pixel Data holds {len(pixel_data)} bytes but Rows x Columns x Samples x Bits x Frames needs "
            f"{expected}: the file is truncated or damaged",
            DATASET_MISMATCH,
        )
