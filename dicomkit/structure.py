"""A fast structural walk of a DICOM file: the engine's per-instance check without pydicom's cost.

pydicom builds a Dataset and converts values (about 1.4 ms for a 512² CT slice, most of the engine's
CPU time); this walks every element's tag, VR and length to the end of the file, into sequences and
encapsulated Pixel Data, converting only the dozen values the checks in `validate` need (about 0.05 ms).
It judges only the common transfer syntaxes (implicit and explicit VR little endian, and the
encapsulated ones); for others it answers None. Damage raises `Damaged`, with the byte offset. Either
way `validate` then asks pydicom, so this walk only ever speeds up the verdict on a whole file.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.datadict import DicomDictionary
from pydicom.filereader import read_file_meta_info

IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
_NOT_WALKED = {"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2"}  # deflated; explicit VR big endian (retired)
UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
PIXEL_DATA, FLOAT_PIXEL_DATA, DOUBLE_FLOAT_PIXEL_DATA = 0x7FE00010, 0x7FE00008, 0x7FE00009
MAX_DEPTH = 32  # sequences nest a few levels in real data; a deeper nest is a crafted file
FIRST_FRAGMENT_HEAD = 64 * 1024  # of the first compressed fragment, kept for `pixels`: any frame header fits

_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())  # 2 reserved bytes, 4-byte length
_SHORT_VRS = frozenset(b"AE AS AT CS DA DS DT FD FL IS LO LT PN SH SL SS ST TM UI UL US".split())
_UIDS = {0x00080016: "sop_class_uid", 0x00080018: "sop_instance_uid", 0x0020000D: "study", 0x0020000E: "series"}
_USHORTS = {
    0x00280002: "samples",
    0x00280010: "rows",
    0x00280011: "columns",
    0x00280100: "bits_allocated",
    0x00280101: "bits_stored",
}
# Image attributes of one value (PS3.3 C.7.6.3): one that holds several contradicts the standard.
SINGLE_VALUED = {
    0x00280002: "SamplesPerPixel",
    0x00280010: "Rows",
    0x00280011: "Columns",
    0x00280100: "BitsAllocated",
    0x00280101: "BitsStored",
    0x00280102: "HighBit",
    0x00280103: "PixelRepresentation",
}
_NUMBER_OF_FRAMES = 0x00280008
_PHOTOMETRIC = 0x00280004
_TAG = struct.Struct("<HH")
_EXPLICIT_HEAD = struct.Struct("<HH2sH")
_IMPLICIT_HEAD = struct.Struct("<HHI")
_ULONG = struct.Struct("<I")
_USHORT = struct.Struct("<H")
_META_TRANSFER_SYNTAX, _META_SOP_CLASS, _META_SOP_INSTANCE = 0x00020010, 0x00020002, 0x00020003


class Damaged(Exception):
    """The file's structure is broken: a malformed item, no valid VR where one belongs..."""


class Truncated(Damaged):
    """The file ends before what its own headers say it holds: cut short, whatever else reads it."""


@dataclass
class Meta:
    """The File Meta Information group, and where the data set starts."""

    transfer_syntax_uid: str
    sop_class_uid: str
    sop_instance_uid: str
    dataset_offset: int


@dataclass
class Scan:
    """What the checks in `validate` need to know of a data set (top level only)."""

    transfer_syntax_uid: str
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    study: str = ""
    series: str = ""
    rows: int | None = None
    columns: int | None = None
    bits_allocated: int | None = None
    samples: int | None = None
    bits_stored: int | None = None
    frames: str = ""
    pixel_data_bytes: int | None = None  # native Pixel Data's length; None when absent
    fragments: int | None = None  # items in encapsulated Pixel Data (Basic Offset Table included)
    first_fragment: bytes | None = None  # the start of the first fragment after the Basic Offset Table
    first_fragment_length: int = 0
    photometric: str = ""
    float_pixel_data: bool = False
    value_counts: dict[str, int] = field(default_factory=dict)  # of SINGLE_VALUED attributes that hold != 1


def read_meta(path: Path | str) -> Meta | None:
    """The file meta of a DICOM Part 10 file (values it lacks are ""), or None when the file has no
    "DICM" prefix or its meta group is damaged."""
    with open(path, "rb") as fh:
        head = fh.read(64 * 1024)
    try:
        return _meta(head)
    except (Damaged, struct.error, UnicodeDecodeError):
        return None


def file_meta(path: Path | str) -> Meta:
    """`read_meta`, or pydicom's reading where this module cannot tell (raising as pydicom does)."""
    meta = read_meta(path)
    if meta is None or not (meta.transfer_syntax_uid and meta.sop_class_uid and meta.sop_instance_uid):
        found = read_file_meta_info(path)
        return Meta(
            str(found.TransferSyntaxUID),
            str(found.MediaStorageSOPClassUID),
            str(found.MediaStorageSOPInstanceUID),
            meta.dataset_offset if meta is not None else 0,
        )
    return meta


def sop_instance_uid_of(path: Path | str) -> str:
    return file_meta(path).sop_instance_uid


def scan(path: Path | str) -> Scan | None:
    """Walk the whole file; None if its transfer syntax is one this module leaves to pydicom."""
    with open(path, "rb") as fh:
        try:
            data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError as exc:  # an empty file cannot be mapped
            raise Truncated("the file is empty") from exc
    with data:
        meta = _meta(data)
        if meta is None or not meta.transfer_syntax_uid or meta.transfer_syntax_uid in _NOT_WALKED:
            return None
        result = Scan(meta.transfer_syntax_uid)
        implicit = meta.transfer_syntax_uid == IMPLICIT_VR_LITTLE_ENDIAN
        first_vr = data[meta.dataset_offset + 4 : meta.dataset_offset + 6]
        if len(first_vr) == 2:  # as pydicom does: believe the bytes over a meta that names the wrong VR encoding
            implicit = first_vr not in _LONG_VRS and first_vr not in _SHORT_VRS
        walker = _Walker(data, implicit=implicit, result=result)
        walker.elements(meta.dataset_offset, len(data), depth=0)
        return result


def _meta(data: bytes | mmap.mmap) -> Meta | None:
    if len(data) < 132 or data[128:132] != b"DICM":
        return None
    values: dict[int, str] = {}
    at = 132
    try:
        while at + 8 <= len(data):
            group, element, vr, length = _EXPLICIT_HEAD.unpack_from(data, at)
            if group != 0x0002:
                break
            head = 8
            if vr in _LONG_VRS:
                (length,) = _ULONG.unpack_from(data, at + 8)
                head = 12
            if length == UNDEFINED or at + head + length > len(data):
                raise Damaged(f"the file meta element ({group:04X},{element:04X}) runs past the end of the file")
            tag = group << 16 | element
            if tag in (_META_TRANSFER_SYNTAX, _META_SOP_CLASS, _META_SOP_INSTANCE):
                values[tag] = _text(data[at + head : at + head + length])
            at += head + length
    except struct.error as exc:
        raise Damaged("the file meta is cut short") from exc
    return Meta(
        values.get(_META_TRANSFER_SYNTAX, ""), values.get(_META_SOP_CLASS, ""), values.get(_META_SOP_INSTANCE, ""), at
    )


def _text(raw: bytes) -> str:
    return raw.decode("ascii", "replace").strip("\0 ")


class _Walker:
    def __init__(self, data: mmap.mmap, *, implicit: bool, result: Scan) -> None:
        self.data, self.implicit, self.result = data, implicit, result

    def elements(self, at: int, end: int, depth: int, *, implicit: bool | None = None) -> int:
        """Walk elements from `at` to `end` (or to an item delimiter when `end` is undefined); returns
        the offset after the last. Only depth 0 fills the result."""
        data = self.data
        implicit = self.implicit if implicit is None else implicit
        size = len(data)
        while at < end:
            if at + 8 > size:
                raise Truncated(f"an element header is cut short at byte {at}")
            group, element = _TAG.unpack_from(data, at)
            tag = group << 16 | element
            if tag == ITEM_END:
                if end != UNDEFINED:
                    raise Damaged(f"an item delimiter inside an item of defined length at byte {at}")
                return at + 8
            if implicit or group == 0xFFFE:
                (length,) = _ULONG.unpack_from(data, at + 4)
                vr = _implicit_vr(tag) if group != 0xFFFE else b""
                head = 8
            else:
                vr = data[at + 4 : at + 6]
                if vr in _LONG_VRS:
                    if at + 12 > size:
                        raise Truncated(f"an element header is cut short at byte {at}")
                    (length,) = _ULONG.unpack_from(data, at + 8)
                    head = 12
                elif vr in _SHORT_VRS:
                    (length,) = _USHORT.unpack_from(data, at + 6)
                    head = 8
                else:
                    raise Damaged(f"({group:04X},{element:04X}) at byte {at} has no valid VR ({bytes(vr)!r})")
            start = at + head
            if tag == PIXEL_DATA and length == UNDEFINED:
                at = self.fragments(start, depth)
                continue
            if length == UNDEFINED:
                if not implicit and vr not in (b"SQ", b"UN"):
                    raise Damaged(f"({group:04X},{element:04X}) at byte {at} has an undefined length")
                # UN of undefined length holds a sequence encoded in implicit VR (PS3.5 6.2.2).
                at = self.sequence(start, UNDEFINED, depth, implicit=implicit or vr == b"UN")
                continue
            if start + length > size:
                raise Truncated(
                    f"({group:04X},{element:04X}) at byte {at} needs {length} bytes but the file ends "
                    f"after {size - start}: it is truncated"
                )
            if vr == b"SQ":
                self.sequence(start, start + length, depth, implicit=implicit)
            elif depth == 0:
                self.note(tag, start, length)
            at = start + length
        if end != UNDEFINED and at != end:
            raise Damaged(f"an element overruns its item or sequence at byte {end}")
        return at

    def sequence(self, at: int, end: int, depth: int, *, implicit: bool) -> int:
        if depth >= MAX_DEPTH:
            raise Damaged(f"sequences nest more than {MAX_DEPTH} deep")
        data = self.data
        while end == UNDEFINED or at < end:
            if at + 8 > len(data):
                raise Truncated(f"the file ends inside a sequence at byte {at}")
            group, element, length = _IMPLICIT_HEAD.unpack_from(data, at)
            tag = group << 16 | element
            if tag == SEQUENCE_END and end == UNDEFINED:
                return at + 8
            if tag != ITEM:
                raise Damaged(f"a sequence holds ({group:04X},{element:04X}) at byte {at} where an item belongs")
            start = at + 8
            if length == UNDEFINED:
                at = self.elements(start, UNDEFINED, depth + 1, implicit=implicit)
            else:
                if start + length > len(data):
                    raise Truncated(f"a sequence item at byte {at} runs past the end of the file")
                self.elements(start, start + length, depth + 1, implicit=implicit)
                at = start + length
        if at != end:
            raise Damaged(f"a sequence item overruns its sequence at byte {end}")
        return at

    def fragments(self, at: int, depth: int) -> int:
        """Encapsulated Pixel Data: items of defined length, then the sequence delimiter."""
        data = self.data
        count = 0
        while True:
            if at + 8 > len(data):
                raise Truncated(f"the encapsulated Pixel Data is cut short at byte {at}")
            group, element, length = _IMPLICIT_HEAD.unpack_from(data, at)
            tag = group << 16 | element
            if tag == SEQUENCE_END:
                if depth == 0:
                    self.result.fragments = count
                return at + 8
            if tag != ITEM or length == UNDEFINED:
                raise Damaged(f"the encapsulated Pixel Data holds a malformed item at byte {at}")
            if at + 8 + length > len(data):
                raise Truncated(f"a Pixel Data fragment at byte {at} runs past the end of the file: it is truncated")
            if count == 1 and depth == 0:
                self.result.first_fragment = bytes(data[at + 8 : at + 8 + min(length, FIRST_FRAGMENT_HEAD)])
                self.result.first_fragment_length = length
            count += 1
            at += 8 + length

    def note(self, tag: int, start: int, length: int) -> None:
        result = self.result
        if tag in SINGLE_VALUED and length > 2:  # a US value is 2 bytes
            result.value_counts[SINGLE_VALUED[tag]] = (length + 1) // 2
        if tag in _UIDS:
            setattr(result, _UIDS[tag], _text(self.data[start : start + length]))
        elif tag in _USHORTS:
            value = _USHORT.unpack_from(self.data, start)[0] if length >= 2 else None
            setattr(result, _USHORTS[tag], value)
        elif tag == _NUMBER_OF_FRAMES:
            result.frames = _text(self.data[start : start + length])
        elif tag == _PHOTOMETRIC:
            result.photometric = _text(self.data[start : start + length])
        elif tag == PIXEL_DATA:
            result.pixel_data_bytes = length
        elif tag in (FLOAT_PIXEL_DATA, DOUBLE_FLOAT_PIXEL_DATA):
            result.float_pixel_data = True


def _implicit_vr(tag: int) -> bytes:
    """The dictionary's VR, as far as the walk needs it: SQ or anything else."""
    entry = DicomDictionary.get(tag)
    return b"SQ" if entry is not None and entry[0] == "SQ" else b""
