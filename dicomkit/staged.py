"""What a share link's staged folder holds: a patient, studies, series and instances, read from headers.

A staged folder is flat, `<folder>/<SOPInstanceUID>.dcm`. The viewer needs its structure on every
page load, so the manifest is cached in `<folder>/.manifest.json` and rebuilt only when the folder's
file set changes. No Django here: pure functions over files, so tests need no app or database.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

CACHE_NAME = ".manifest.json"
CACHE_VERSION = 1
SUFFIX = ".dcm"
MEMO_ENTRIES = 64
QUIET_NS = 2_000_000_000
UID_PATTERN = re.compile(r"[0-9]+(?:\.[0-9]+)*")
"""A DICOM UID (PS3.5 9.1): digits and dots, at most 64 characters. Nothing else can reach a path."""


_memo: dict[str, tuple[int, dict[str, Any]]] = {}
_memo_lock = threading.Lock()


def is_uid(value: str) -> bool:
    """True for a syntactically valid DICOM UID."""
    return isinstance(value, str) and len(value) <= 64 and UID_PATTERN.fullmatch(value) is not None


def instance_path(folder: Path, sop_uid: str) -> Path:
    """The staged file of `sop_uid`; ValueError unless the UID is valid and the file is inside `folder`."""
    if not is_uid(sop_uid):
        raise ValueError("not a DICOM UID")
    root = Path(folder).resolve()
    path = (root / f"{sop_uid}{SUFFIX}").resolve()
    # The UID check already rules out separators; this also refuses a symlink leading elsewhere.
    if path.parent != root or not path.is_file():
        raise ValueError("no such instance")
    return path


def manifest(folder: Path) -> dict[str, Any]:
    """The patient, studies, series (by SeriesNumber) and instances (by InstanceNumber, then position).

    Instances without pixel data (SR, key objects, PDFs) are left out of the image series and listed
    under each study's `documents` instead, so the viewer never asks to render them. The result may
    be shared between callers: treat it as read-only.
    """
    folder = Path(folder)
    # The viewer's image endpoint asks for the manifest on every image; while the folder itself is
    # unchanged (no file added, removed or renamed) the copy in memory stands, saving a stat per file.
    folder_mtime = folder.stat().st_mtime_ns
    memo = _memo.get(str(folder))
    if memo is not None and memo[0] == folder_mtime:
        return memo[1]
    files = _staged_files(folder)
    signature = _signature(folder, files)
    result = _read_cache(folder / CACHE_NAME, signature)
    if result is None:
        result = _build(folder, files)
        _write_cache(folder / CACHE_NAME, signature, result)
        # Writing the cache renamed a file into the folder; the next call re-checks the signature.
        return result
    # Timestamps tick coarsely (a few ms): a folder changed just now could change again unseen
    # within the same tick, so only a folder quiet for a while is remembered (git's "racy" rule).
    if time.time_ns() - folder_mtime > QUIET_NS:
        with _memo_lock:
            _memo[str(folder)] = (folder_mtime, result)
            while len(_memo) > MEMO_ENTRIES:
                _memo.pop(next(iter(_memo)))
    return result


def forget(folder: Path) -> None:
    """Drop the in-memory copy of a folder's manifest (its staged copy was purged)."""
    with _memo_lock:
        _memo.pop(str(Path(folder)), None)


def _staged_files(folder: Path) -> list[str]:
    return sorted(entry.name for entry in os.scandir(folder) if entry.name.endswith(SUFFIX) and entry.is_file())


def _signature(folder: Path, names: list[str]) -> str:
    """Changes when a file is added, removed or rewritten (name, size and mtime of each)."""
    digest = hashlib.sha256()
    for name in names:
        stat = (folder / name).stat()
        digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _read_cache(path: Path, signature: str) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or data.get("signature") != signature:
        return None
    return data.get("manifest")


def _write_cache(path: Path, signature: str, result: dict[str, Any]) -> None:
    """Atomic replace: two requests building at once each write a whole file, never a torn one."""
    payload = json.dumps({"version": CACHE_VERSION, "signature": signature, "manifest": result}, ensure_ascii=False)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".manifest.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(payload)
        os.replace(tmp, path)
    except OSError:
        # A read-only folder still gets a manifest, just not a cached one.
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _read_header(path: Path) -> Dataset | None:
    try:
        # specific_tags would be slower: pydicom still walks every element to find them.
        return pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, EOFError):
        return None


def _build(folder: Path, names: list[str]) -> dict[str, Any]:
    patient: dict[str, str] | None = None
    studies: dict[str, dict[str, Any]] = {}
    series: dict[tuple[str, str], dict[str, Any]] = {}
    for name in names:
        ds = _read_header(folder / name)
        if ds is None or not is_uid(str(ds.get("SOPInstanceUID", ""))):
            continue
        if f"{ds.SOPInstanceUID}{SUFFIX}" != name:
            continue  # instance_path() could never find it under another name
        if patient is None or (not patient["name"] and ds.get("PatientName")):
            patient = _patient(ds)
        study_uid = str(ds.get("StudyInstanceUID", ""))
        study = studies.setdefault(study_uid, _study(ds))
        if _is_image(ds):
            entry = series.setdefault((study_uid, str(ds.get("SeriesInstanceUID", ""))), _series(ds))
            entry["_instances"].append((_instance_order(ds), _instance(ds)))
        else:
            study["documents"].append(_document(ds))
    for (study_uid, _), entry in series.items():
        entry["instances"] = [item for _, item in sorted(entry.pop("_instances"), key=lambda pair: pair[0])]
        studies[study_uid]["series"].append(entry)
    for study in studies.values():
        study["series"].sort(key=_series_order)
        study["documents"].sort(key=_document_order)
    ordered = sorted(studies.values(), key=lambda study: (study["_time"], study["study_instance_uid"]))
    for study in ordered:
        del study["_time"]
    return {"patient": patient or {"name": "", "id": "", "birth_date": "", "sex": ""}, "studies": ordered}


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def _int(ds: Dataset, keyword: str) -> int | None:
    try:
        return int(ds.get(keyword))
    except (TypeError, ValueError):
        return None


def _is_image(ds: Dataset) -> bool:
    return "Rows" in ds and "Columns" in ds


def _patient(ds: Dataset) -> dict[str, str]:
    # DICOM values as stored (PN with '^', dates YYYYMMDD); the viewer formats them for display.
    return {
        "name": _text(ds, "PatientName"),
        "id": _text(ds, "PatientID"),
        "birth_date": _text(ds, "PatientBirthDate"),
        "sex": _text(ds, "PatientSex"),
    }


def _study(ds: Dataset) -> dict[str, Any]:
    return {
        "study_instance_uid": _text(ds, "StudyInstanceUID"),
        "date": _text(ds, "StudyDate"),
        "description": _text(ds, "StudyDescription"),
        "accession_number": _text(ds, "AccessionNumber"),
        "series": [],
        "documents": [],
        "_time": _text(ds, "StudyDate") + _text(ds, "StudyTime"),
    }


def _series(ds: Dataset) -> dict[str, Any]:
    return {
        "series_instance_uid": _text(ds, "SeriesInstanceUID"),
        "number": _int(ds, "SeriesNumber"),
        "modality": _text(ds, "Modality"),
        "description": _text(ds, "SeriesDescription"),
        "instances": [],
        "_instances": [],
    }


def _series_order(entry: dict[str, Any]) -> tuple[bool, int, str]:
    return (entry["number"] is None, entry["number"] or 0, entry["series_instance_uid"])


def _instance(ds: Dataset) -> dict[str, Any]:
    """`window` is the file's own (center, width), so the viewer can show and adjust it; None if it has none."""
    return {
        "sop_instance_uid": str(ds.SOPInstanceUID),
        "frames": max(_int(ds, "NumberOfFrames") or 1, 1),
        "window": _window(ds),
    }


def _window(ds: Dataset) -> list[float] | None:
    item = ds
    shared = ds.get("SharedFunctionalGroupsSequence")
    if "WindowCenter" not in ds and shared and shared[0].get("FrameVOILUTSequence"):
        item = shared[0].FrameVOILUTSequence[0]
    values = []
    for keyword in ("WindowCenter", "WindowWidth"):
        value = item.get(keyword)
        if isinstance(value, MultiValue):
            value = value[0] if value else None
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        if not math.isfinite(number):
            return None
        values.append(number)
    return values if values[1] >= 1 else None


def _document(ds: Dataset) -> dict[str, Any]:
    return {
        "sop_instance_uid": str(ds.SOPInstanceUID),
        "sop_class_uid": _text(ds, "SOPClassUID"),
        "modality": _text(ds, "Modality"),
        "series_instance_uid": _text(ds, "SeriesInstanceUID"),
        "series_number": _int(ds, "SeriesNumber"),
        "description": _text(ds, "SeriesDescription"),
    }


def _document_order(doc: dict[str, Any]) -> tuple[bool, int, str]:
    return (doc["series_number"] is None, doc["series_number"] or 0, doc["sop_instance_uid"])


def _instance_order(ds: Dataset) -> tuple[bool, int, float, str]:
    """InstanceNumber first; position along the slice normal breaks ties (or stands in when absent)."""
    number = _int(ds, "InstanceNumber")
    return (number is None, number or 0, _slice_position(ds), str(ds.SOPInstanceUID))


def _slice_position(ds: Dataset) -> float:
    try:
        position = [float(v) for v in ds.ImagePositionPatient]
    except (AttributeError, TypeError, ValueError):
        return 0.0
    try:
        r = [float(v) for v in ds.ImageOrientationPatient]
        normal = (r[1] * r[5] - r[2] * r[4], r[2] * r[3] - r[0] * r[5], r[0] * r[4] - r[1] * r[3])
    except (AttributeError, TypeError, ValueError, IndexError):
        normal = (0.0, 0.0, 1.0)
    return sum(p * n for p, n in zip(position, normal, strict=False))
