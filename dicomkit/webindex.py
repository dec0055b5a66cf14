"""The DICOMweb view of a folder of staged instances (`<folder>/<SOPInstanceUID>.dcm`, flat).

For each instance: its DICOM JSON metadata (PS3.18 F.2) with bulk data as BulkDataURIs, and where each
frame's bytes lie in its file. Built once, when the folder is staged, into `<folder>/.dicomweb.json`, and
kept in memory per process while the folder is unchanged: metadata and frame requests then read no
header at all (a 300-instance CT would otherwise cost ~0.5 s of pydicom per metadata call). No Django.

BulkDataURIs hold `ROOT` in place of the DICOMweb root: one folder is served under several roots (a
consultant's, a member of staff's), so the server substitutes its own when it answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

# One rule for which files a staged folder holds and when it changed, shared with the viewer's manifest.
from .staged import _signature, _staged_files

INDEX_NAME = ".dicomweb.json"
INDEX_VERSION = 1
SUFFIX = ".dcm"
ROOT = "{+root}"
BULK_THRESHOLD = 64 * 1024  # top-level binary values larger than this are served as bulk data, not inline
BULK_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
PIXEL_TAGS = {0x7FE00010: "7FE00010", 0x7FE00008: "7FE00008", 0x7FE00009: "7FE00009"}
ITEM, SEQUENCE_END, UNDEFINED = 0xFFFEE000, 0xFFFEE0DD, 0xFFFFFFFF
MEMO_ENTRIES = 32
QUIET_NS = 2_000_000_000
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
_memo: dict[str, tuple[int, Index]] = {}
_memo_lock = threading.Lock()


@dataclass
class Pixels:
    """Where an instance's pixel data lies. `mode`: native (one value, frames back to back), encapsulated
    (`fragments` per frame, as (offset, length) in the file) or pydicom (anything else: decode to serve)."""

    mode: str
    vr: str = "OW"
    offset: int = 0
    length: int = 0
    fragments: list[list[tuple[int, int]]] = field(default_factory=list)


@dataclass
class Entry:
    """One instance as DICOMweb serves it."""

    sop: str
    study: str
    series: str
    sop_class: str
    transfer_syntax: str
    name: str
    size: int
    frames: int
    rows: int
    columns: int
    samples: int
    bits_allocated: int
    pixels: Pixels | None
    metadata: dict[str, Any]
    encoded: bytes = b""  # the metadata as JSON, made once per process

    def value(self, tag: str) -> list[Any]:
        """The element's DICOM JSON "Value" (an empty list when absent or empty)."""
        return (self.metadata.get(tag) or {}).get("Value") or []

    def first(self, tag: str, default: Any = None) -> Any:
        values = self.value(tag)
        return values[0] if values else default

    @property
    def frame_length(self) -> int:
        """Bytes of one native frame (bits for 1-bit data are packed across frames; see frame_bytes)."""
        return self.rows * self.columns * self.samples * self.bits_allocated // 8


@dataclass
class Index:
    folder: Path
    entries: dict[str, Entry]

    def instances(self, study: str | None = None, series: str | None = None) -> list[Entry]:
        return [
            e
            for e in self.entries.values()
            if (study is None or e.study == study) and (series is None or e.series == series)
        ]

    def path(self, entry: Entry) -> Path:
        return self.folder / entry.name


def load(folder: Path) -> Index:
    """The folder's index: from memory while the folder is unchanged, else from its cache file, else built
    now (and the cache written). Safe to call from many threads; treat the result as read-only."""
    folder = Path(folder)
    folder_mtime = folder.stat().st_mtime_ns
    memo = _memo.get(str(folder))
    if memo is not None and memo[0] == folder_mtime:
        return memo[1]
    names = _staged_files(folder)
    signature = _signature(folder, names)
    data = _read_cache(folder / INDEX_NAME, signature)
    if data is None:
        data = build(folder, names)
        _write_cache(folder / INDEX_NAME, signature, data)
    index = _from_json(folder, data)
    # As sharing.staged does: only a folder quiet for a while is remembered (timestamps tick coarsely).
    if time.time_ns() - folder_mtime > QUIET_NS:
        with _memo_lock:
            _memo[str(folder)] = (folder.stat().st_mtime_ns, index)
            while len(_memo) > MEMO_ENTRIES:
                _memo.pop(next(iter(_memo)))
    return index


def warm(folder: Path) -> None:
    """Build and cache the index now (the staging task calls this before a copy turns ready)."""
    load(folder)


def forget(folder: Path) -> None:
    with _memo_lock:
        _memo.pop(str(Path(folder)), None)


def _read_cache(path: Path, signature: str) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != INDEX_VERSION or data.get("signature") != signature:
        return None
    return data


def _write_cache(path: Path, signature: str, data: dict[str, Any]) -> None:
    data["version"], data["signature"] = INDEX_VERSION, signature
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".dicomweb.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, separators=(",", ":"))
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _from_json(folder: Path, data: dict[str, Any]) -> Index:
    entries = {}
    for raw in data.get("instances", []):
        pixels = raw.pop("pixels", None)
        entry = Entry(**raw, pixels=Pixels(**pixels) if pixels else None)
        if entry.pixels and entry.pixels.fragments:
            entry.pixels.fragments = [[(int(o), int(n)) for o, n in frame] for frame in entry.pixels.fragments]
        entry.encoded = json.dumps(entry.metadata, separators=(",", ":")).encode()
        entries[entry.sop] = entry
    return Index(folder, entries)


# --- building ------------------------------------------------------------------------------------


def build(folder: Path, names: list[str] | None = None) -> dict[str, Any]:
    """Read every staged file's header once. Files that are not DICOM, or stored under another name
    than their SOP Instance UID, are left out (nothing could find them by UID)."""
    folder = Path(folder)
    records = []
    for name in names if names is not None else _staged_files(folder):
        record = _record(folder / name)
        if record is not None and f"{record['sop']}{SUFFIX}" == name:
            records.append(record)
    records.sort(key=_order)
    for record in records:
        del record["_order"]
    return {"instances": records}


def _order(record: dict[str, Any]) -> tuple:
    return record["_order"]


def _record(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as fh:
            ds = pydicom.dcmread(fh, stop_before_pixels=True)
            pixels = _locate_pixels(fh, ds)
    except (InvalidDicomError, OSError, ValueError, EOFError, struct.error):
        return None
    sop, study, series = (str(ds.get(k, "")) for k in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"))
    if not sop:
        return None
    base = f"{ROOT}/studies/{study}/series/{series}/instances/{sop}"
    metadata = dataset_json(ds, base)
    if pixels is not None:
        metadata["7FE00010"] = {"vr": pixels.vr, "BulkDataURI": f"{base}/bulkdata/7FE00010"}
    frames = _int(ds, "NumberOfFrames") or (1 if pixels is not None else 0)
    return {
        "sop": sop,
        "study": study,
        "series": series,
        "sop_class": str(ds.get("SOPClassUID", "")),
        "transfer_syntax": str(ds.file_meta.get("TransferSyntaxUID", "")),
        "name": path.name,
        "size": path.stat().st_size,
        "frames": max(frames, 0),
        "rows": _int(ds, "Rows") or 0,
        "columns": _int(ds, "Columns") or 0,
        "samples": _int(ds, "SamplesPerPixel") or 1,
        "bits_allocated": _int(ds, "BitsAllocated") or 0,
        "pixels": pixels.__dict__ if pixels is not None else None,
        "metadata": metadata,
        "_order": (*_rank(ds, "SeriesNumber", study, series), *_rank(ds, "InstanceNumber", sop)),
    }


def _rank(ds: Dataset, keyword: str, *after: str) -> tuple:
    number = _int(ds, keyword)
    return (*after[:1], number is None, number or 0, *after[1:])


def _int(ds: Dataset, keyword: str) -> int | None:
    try:
        return int(ds.get(keyword))
    except (TypeError, ValueError):
        return None


def dataset_json(ds: Dataset, base: str) -> dict[str, Any]:
    """DICOM JSON of the data set's top level; large binary values become BulkDataURIs under `base`.
    Group lengths are left out (meaningless once re-encoded) and so is an element pydicom cannot encode
    (a damaged value must not cost the whole instance its metadata)."""
    out: dict[str, Any] = {}
    for elem in ds:
        if elem.tag.element == 0 or elem.tag in PIXEL_TAGS:
            continue
        key = f"{int(elem.tag):08X}"
        try:
            if elem.VR in BULK_VRS and not elem.is_empty and len(elem.value) > BULK_THRESHOLD:
                out[key] = {"vr": elem.VR, "BulkDataURI": f"{base}/bulkdata/{key}"}
            else:
                out[key] = _element_json(elem)
        except (TypeError, ValueError, AttributeError):
            continue
    return out


def _element_json(elem: DataElement) -> dict[str, Any]:
    return elem.to_json_dict(None, BULK_THRESHOLD)


def _locate_pixels(fh: BinaryIO, ds: Dataset) -> Pixels | None:
    """Where the pixel data lies: `fh` stands at its element header after a read that stopped before it."""
    at = fh.tell()
    head = fh.read(12)
    if len(head) < 8:
        return None
    group, element = struct.unpack_from("<HH", head)
    tag = group << 16 | element
    if tag not in PIXEL_TAGS:
        return None
    implicit, little = ds.original_encoding
    if not little:
        return Pixels(mode="pydicom")
    if implicit:
        (length,) = struct.unpack_from("<I", head, 4)
        vr, value_at = ("OW" if (_int(ds, "BitsAllocated") or 8) > 8 else "OB"), at + 8
    else:
        vr = head[4:6].decode("ascii", "replace")
        if head[4:6] in _LONG_VRS:
            (length,) = struct.unpack_from("<I", head, 8)
            value_at = at + 12
        else:
            (length,) = struct.unpack_from("<H", head, 6)
            value_at = at + 8
    if length != UNDEFINED:
        return Pixels(mode="native", vr=vr, offset=value_at, length=length)
    fragments, offsets = _fragments(fh, value_at)
    frames = max(_int(ds, "NumberOfFrames") or 1, 1)
    per_frame = _fragments_per_frame(fragments, offsets, frames)
    if per_frame is None:
        return Pixels(mode="pydicom", vr="OB")
    return Pixels(mode="encapsulated", vr="OB", fragments=per_frame)


def _fragments(fh: BinaryIO, at: int) -> tuple[list[tuple[int, int]], list[int]]:
    """(offset, length) of each fragment after the Basic Offset Table, and the table's offsets."""
    fh.seek(at)
    fragments: list[tuple[int, int]] = []
    offsets: list[int] = []
    first = True
    while True:
        head = fh.read(8)
        if len(head) < 8:
            raise ValueError("encapsulated pixel data cut short")
        group, element, length = struct.unpack("<HHI", head)
        tag = group << 16 | element
        if tag == SEQUENCE_END:
            return fragments, offsets
        if tag != ITEM or length == UNDEFINED:
            raise ValueError("malformed encapsulated pixel data")
        if first:
            table = fh.read(length)
            offsets = list(struct.unpack(f"<{length // 4}I", table[: length // 4 * 4]))
            first = False
            continue
        fragments.append((fh.tell(), length))
        fh.seek(length, os.SEEK_CUR)


def _fragments_per_frame(
    fragments: list[tuple[int, int]], offsets: list[int], frames: int
) -> list[list[tuple[int, int]]] | None:
    if not fragments:
        return None
    if frames == 1:
        return [fragments]
    if len(fragments) == frames:
        return [[f] for f in fragments]
    if len(offsets) == frames:
        # Offsets count from the first fragment's item tag; each item carries an 8-byte header.
        start = fragments[0][0] - 8
        by_start = {offset - start - 8: i for i, (offset, _) in enumerate(fragments)}
        try:
            firsts = [by_start[o] for o in offsets]
        except KeyError:
            return None
        bounds = [*firsts, len(fragments)]
        return [fragments[bounds[i] : bounds[i + 1]] for i in range(frames)]
    return None


# --- serving -------------------------------------------------------------------------------------


def frame_bytes(index: Index, entry: Entry, number: int) -> bytes:
    """Frame `number` (1-based) as stored: native bytes, or the compressed frame's fragments joined.
    ValueError for a frame the instance does not have; LookupError when only decoding could tell
    (Entry.pixels.mode == "pydicom": the caller decodes)."""
    if entry.pixels is None or not 1 <= number <= entry.frames:
        raise ValueError(f"the instance has no frame {number}")
    pixels = entry.pixels
    with open(index.path(entry), "rb") as fh:
        if pixels.mode == "native":
            if entry.bits_allocated == 1:
                return _bit_frame(fh, entry, number)
            size = entry.frame_length
            fh.seek(pixels.offset + (number - 1) * size)
            data = fh.read(size)
            if len(data) != size:
                raise ValueError("the pixel data is shorter than its frames")
            return data
        if pixels.mode == "encapsulated":
            parts = []
            for offset, length in pixels.fragments[number - 1]:
                fh.seek(offset)
                parts.append(fh.read(length))
            return b"".join(parts)
    raise LookupError("frames of this instance must be decoded")


def _bit_frame(fh: BinaryIO, entry: Entry, number: int) -> bytes:
    """1-bit frames (segmentations) are packed across frame boundaries: repack frame `number` alone."""
    import numpy as np

    bits = entry.rows * entry.columns * entry.samples
    start = (number - 1) * bits
    assert entry.pixels is not None  # noqa: S101 - checked by the caller
    fh.seek(entry.pixels.offset + start // 8)
    raw = np.frombuffer(fh.read((start % 8 + bits + 7) // 8), dtype=np.uint8)
    unpacked = np.unpackbits(raw, bitorder="little")[start % 8 : start % 8 + bits]
    return np.packbits(unpacked, bitorder="little").tobytes()


def pixel_value(index: Index, entry: Entry) -> bytes:
    """The whole native pixel data value (bulk data of 7FE00010)."""
    if entry.pixels is None or entry.pixels.mode != "native":
        raise LookupError("not native pixel data")
    with open(index.path(entry), "rb") as fh:
        fh.seek(entry.pixels.offset)
        return fh.read(entry.pixels.length)


def element_value(index: Index, entry: Entry, tag: str) -> tuple[str, bytes]:
    """(VR, bytes) of a top-level bulk element other than pixel data, read from the file."""
    ds = pydicom.dcmread(index.path(entry), stop_before_pixels=True)
    elem = ds.get(int(tag, 16))
    if elem is None or elem.VR not in BULK_VRS or elem.is_empty:
        raise LookupError(tag)
    return elem.VR, bytes(elem.value)
