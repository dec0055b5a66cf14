"""Checks an instance must pass before we answer Success for it.

pydicom parses truncated files without complaint, so the pixel data length is checked by hand. A fast
structural walk (`structure`) reads most files; pydicom reads the rest, and every damaged one.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, replace
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragments
from pydicom.multival import MultiValue
from pydicom.uid import UID
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import uid_to_service_class

from . import pixels, structure
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
    compressed_frame_bytes: int = 0  # one frame's decoded size, when the pixel data is compressed; else 0


def is_uid(value: str) -> bool:
    return bool(value) and len(value) <= 64 and bool(_UID.match(value))


def uid_in(path: Path | str) -> str:
    """The SOP Instance UID a file (even a damaged one) states, or "": so that a refused instance is
    known by its UID where the sender did not say it (WADO-RS answers carry no C-STORE request)."""
    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
        found = str(ds.get("SOPInstanceUID", "") or ds.file_meta.get("MediaStorageSOPInstanceUID", "")).strip("\0 ")
    except Exception:  # noqa: BLE001 - damaged beyond that: the record says what it can
        return ""
    return found if is_uid(found) else ""


def inspect_file(
    path: Path | str,
    *,
    expected_sop_instance_uid: str = "",
    expected_sop_class_uid: str = "",
) -> InstanceInfo:
    """Parse and check one instance file; raise InvalidInstance with the status to answer.

    A file the fast structural walk finds whole is judged on what the walk read. Anything else (damage,
    an unusual transfer syntax) is read by pydicom, whose reasons stand; but a file that ends before its
    own headers say it does is refused even where pydicom reads it without complaint.

    Whatever a check trips over in a damaged file is a refusal with a reason, never an exception the
    receiver would answer "out of resources" for (a sender retries those for ever)."""
    try:
        return _inspect(path, expected_sop_instance_uid, expected_sop_class_uid)
    except (InvalidInstance, OSError, MemoryError):
        raise
    except Exception as exc:  # any other failure is the data's doing
        raise InvalidInstance(
            f"the data set could not be checked, it is damaged ({type(exc).__name__}: {exc})", CANNOT_UNDERSTAND
        ) from exc


def _inspect(path: Path | str, expected_sop_instance_uid: str, expected_sop_class_uid: str) -> InstanceInfo:
    truncated: structure.Truncated | None = None
    try:
        facts = structure.scan(path)
    except structure.Truncated as exc:
        facts, truncated = None, exc
    except (structure.Damaged, OSError, struct.error, UnicodeDecodeError):
        facts = None
    if facts is None:
        info = _inspect_with_pydicom(path, expected_sop_instance_uid, expected_sop_class_uid)
        if truncated is not None:
            raise InvalidInstance(f"the file is truncated: {truncated}", CANNOT_UNDERSTAND)
        return info
    return _check(
        facts, expected_sop_instance_uid=expected_sop_instance_uid, expected_sop_class_uid=expected_sop_class_uid
    )


def _inspect_with_pydicom(
    path: Path | str, expected_sop_instance_uid: str, expected_sop_class_uid: str
) -> InstanceInfo:
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
    """The checks of `inspect_file` on a data set pydicom has read."""
    return _check(
        _facts_of(ds, transfer_syntax),
        expected_sop_instance_uid=expected_sop_instance_uid,
        expected_sop_class_uid=expected_sop_class_uid,
    )


def _facts_of(ds: Dataset, transfer_syntax: str) -> structure.Scan:
    counts = {name: len(ds[name].value) for name in structure.SINGLE_VALUED.values() if _many(ds, name)}
    facts = structure.Scan(
        transfer_syntax,
        sop_class_uid=_text(ds, "SOPClassUID"),
        sop_instance_uid=_text(ds, "SOPInstanceUID"),
        study=_text(ds, "StudyInstanceUID"),
        series=_text(ds, "SeriesInstanceUID"),
        rows=_int(ds, "Rows"),
        columns=_int(ds, "Columns"),
        bits_allocated=_int(ds, "BitsAllocated"),
        samples=_int(ds, "SamplesPerPixel"),
        bits_stored=_int(ds, "BitsStored"),
        frames=str(ds.get("NumberOfFrames", "") or ""),
        photometric=_text(ds, "PhotometricInterpretation"),
        float_pixel_data=bool({"FloatPixelData", "DoubleFloatPixelData"} & set(ds.dir())),
        value_counts=counts,
    )
    if "PixelData" not in ds:
        return facts
    pixel_data = ds.PixelData or b""
    if UID(transfer_syntax).is_encapsulated:
        try:
            items = list(generate_fragments(pixel_data))
        except Exception as exc:  # malformed item tags or lengths
            raise InvalidInstance(f"the encapsulated Pixel Data is damaged ({exc})", DATASET_MISMATCH) from exc
        facts.fragments = len(items)
        if len(items) > 1:
            facts.first_fragment = bytes(items[1][: structure.FIRST_FRAGMENT_HEAD])
            facts.first_fragment_length = len(items[1])
    else:
        facts.pixel_data_bytes = len(pixel_data)
    return facts


def _text(ds: Dataset, keyword: str) -> str:
    return str(ds.get(keyword, "") or "").strip("\0 ")


def _many(ds: Dataset, keyword: str) -> bool:
    return keyword in ds and isinstance(ds[keyword].value, (list, tuple, MultiValue))


def _int(ds: Dataset, keyword: str) -> int | None:
    """The first value (`_check` refuses an attribute of several values), or None when empty."""
    value = ds.get(keyword)
    if isinstance(value, (list, tuple, MultiValue)):
        value = value[0] if len(value) else None
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInstance(f"{keyword} holds {value!r}, which is not a number", DATASET_MISMATCH) from exc


def _check(
    facts: structure.Scan, *, expected_sop_instance_uid: str = "", expected_sop_class_uid: str = ""
) -> InstanceInfo:
    """The rules every instance must pass, whichever reader read it."""
    if facts.value_counts:
        keyword, count = next(iter(facts.value_counts.items()))
        raise InvalidInstance(
            f"{keyword} holds {count} values where the standard allows one: the header is damaged", DATASET_MISMATCH
        )
    sop_instance = _uid(facts.sop_instance_uid, "SOP Instance UID (0008,0018)")
    sop_class = _uid(facts.sop_class_uid, "SOP Class UID (0008,0016)")
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
    study = _uid(facts.study, "Study Instance UID (0020,000D)")
    series = _uid(facts.series, "Series Instance UID (0020,000E)")
    _check_pixel_data(facts)
    frame_bytes = 0
    if facts.fragments is not None:
        frame_bytes = expected_pixel_bytes(replace(facts, frames="1", photometric=""))
    return InstanceInfo(sop_class, sop_instance, study, series, facts.transfer_syntax_uid, frame_bytes)


def _uid(value: str, label: str) -> str:
    if not value:
        raise InvalidInstance(f"the data set has no {label}", DATASET_MISMATCH)
    if not is_uid(value):
        raise InvalidInstance(f"{label} {value!r} is not a valid UID", DATASET_MISMATCH)
    return value


def expected_pixel_bytes(facts: structure.Scan) -> int:
    """Rows x Columns x Samples per Pixel x Bits Allocated / 8 x Number of Frames; YBR_FULL_422 holds two
    samples a pixel, not three (each pair of pixels shares its Cb and Cr, PS3.3 C.7.6.3.1.2)."""
    try:
        frames = max(1, int(float(facts.frames or 1)))
    except ValueError:
        frames = 1
    samples = facts.samples or 1
    if facts.photometric == "YBR_FULL_422" and samples == 3:
        samples = 2
    pixels = (facts.rows or 0) * (facts.columns or 0) * samples * frames
    return (pixels * (facts.bits_allocated or 0) + 7) // 8


def _check_pixel_data(facts: structure.Scan) -> None:
    if facts.pixel_data_bytes is None and facts.fragments is None:
        if facts.rows is not None and facts.columns is not None and not facts.float_pixel_data:
            # pydicom drops an encapsulated Pixel Data element cut short by the end of the file.
            raise InvalidInstance(
                "the data set describes an image (Rows, Columns) but has no Pixel Data: the file is probably truncated",
                DATASET_MISMATCH,
            )
        return
    for label, value in (("Rows", facts.rows), ("Columns", facts.columns), ("BitsAllocated", facts.bits_allocated)):
        if value is None:
            raise InvalidInstance(f"Pixel Data is present but {label} is missing", DATASET_MISMATCH)
    problem = _impossible_image(facts)
    if problem:
        raise InvalidInstance(f"the image header is impossible: {problem}", DATASET_MISMATCH)
    if facts.fragments is not None:
        if facts.fragments < 2:  # the Basic Offset Table item plus at least one fragment
            raise InvalidInstance("the encapsulated Pixel Data holds no compressed frames", DATASET_MISMATCH)
        problem = pixels.frame_header_problem(facts)
        if problem:
            raise InvalidInstance(problem, DATASET_MISMATCH)
        return
    expected = expected_pixel_bytes(facts)
    if (facts.pixel_data_bytes or 0) < expected:
        raise InvalidInstance(
            f"Pixel Data holds {facts.pixel_data_bytes} bytes but Rows x Columns x Samples x Bits x Frames needs "
            f"{expected}: the file is truncated or damaged",
            DATASET_MISMATCH,
        )


def _impossible_image(facts: structure.Scan) -> str | None:
    """Values of the Image Pixel module (PS3.3 C.7.6.3) no image can have."""
    bits, stored, samples = facts.bits_allocated or 0, facts.bits_stored, facts.samples
    if not facts.rows or not facts.columns:
        return f"{facts.rows} rows x {facts.columns} columns"
    if bits != 1 and (bits % 8 or not 8 <= bits <= 64):
        return f"Bits Allocated is {bits} (1 or a multiple of 8 up to 64)"
    if stored is not None and not 1 <= stored <= bits:
        return f"Bits Stored is {stored} with Bits Allocated {bits}"
    if samples is not None and not 1 <= samples <= 4:
        return f"Samples per Pixel is {samples}"
    return None
