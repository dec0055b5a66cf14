"""What the receiver checks of compressed pixel data on receipt, and why the two checks differ.

* **Structure** (always; microseconds; a refusal): the first frame's own header must agree with its
  transfer syntax and with the data set. A JPEG or JPEG-LS frame starts with SOI and well-formed marker
  segments up to a SOF whose lines, samples per line and components are the data set's Rows, Columns and
  Samples per Pixel; a JPEG 2000 frame starts with SOC and SIZ (bare, or in a JP2 box) of the same size and
  components; an RLE frame's header has as many segments as Samples per Pixel x bytes per sample, in
  ascending order inside the frame. A frame that fails is structurally impossible: no decoder anywhere can
  make the image its data set describes, so the sender is told (quarantine, 0xA900).
* **Decoding** (optional; bounded; never a refusal): whether the decoders installed here decode the first
  frame. A failure is not proof of damage: decoders differ, and pydicom's `JPEG-lossy.dcm`, a real image,
  fails in libjpeg ("scan stop must be 63") and in Pillow (no 12-bit) while other viewers show it. Such an
  instance is stored and flagged (`Arrival.pixel_warning`), never dropped; the flag says the portal could
  not show or transcode it, and why.
"""

from __future__ import annotations

import struct
from itertools import pairwise
from pathlib import Path

from . import structure

DECODE_LIMIT = 32 * 1024 * 1024  # decoded bytes of the first frame beyond which decoding is not tried

JPEG_FAMILY = frozenset(
    {
        "1.2.840.10008.1.2.4.50",  # baseline
        "1.2.840.10008.1.2.4.51",  # extended
        "1.2.840.10008.1.2.4.57",  # lossless
        "1.2.840.10008.1.2.4.70",  # lossless, first-order prediction
        "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
        "1.2.840.10008.1.2.4.81",  # JPEG-LS near-lossless
    }
)
JPEG_2000 = frozenset(
    {
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.4.201",  # HTJ2K lossless
        "1.2.840.10008.1.2.4.202",  # HTJ2K lossless RPCL
        "1.2.840.10008.1.2.4.203",  # HTJ2K
    }
)
RLE = "1.2.840.10008.1.2.5"

_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7})  # F7: JPEG-LS
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RSTn, SOI: no length follows
_SOS, _EOI = 0xDA, 0xD9


class _Short(Exception):
    """The header runs past the bytes we have: no verdict."""


def frame_header_problem(facts: structure.Scan) -> str | None:
    """Why the first compressed frame's header is impossible for this data set, or None (also when there
    is nothing to judge: not compressed, or a transfer syntax without a frame header we read)."""
    head = facts.first_fragment
    if head is None:
        return None
    syntax = str(facts.transfer_syntax_uid)
    try:
        if syntax in JPEG_FAMILY:
            return _jpeg(head, facts)
        if syntax in JPEG_2000:
            return _jpeg2000(head, facts)
        if syntax == RLE:
            return _rle(head, facts)
    except (_Short, struct.error):
        return None
    return None


def _disagree(what: str, header: dict[str, int], facts: structure.Scan) -> str | None:
    wanted = {"rows": facts.rows, "columns": facts.columns, "samples": facts.samples or 1}
    for name, value in header.items():
        if wanted[name] is not None and value != wanted[name]:
            return (
                f"the first frame's {what} header gives {name} {value} but the data set says {wanted[name]}: "
                "the frame cannot be the image the data set describes"
            )
    return None


def _jpeg(head: bytes, facts: structure.Scan) -> str | None:
    if head[:2] != b"\xff\xd8":
        return f"the first frame does not start with a JPEG SOI marker (it starts {head[:4].hex()})"
    at = 2
    while True:
        if at + 2 > len(head):
            raise _Short
        if head[at] != 0xFF:
            return f"the first frame's JPEG header is broken: no marker at byte {at} (found {head[at]:02x})"
        marker = head[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in _STANDALONE:
            at += 2
            continue
        if marker in (_SOS, _EOI) or marker == 0x00:
            return f"the first frame's JPEG header has no frame header (SOF) before marker {marker:02x}"
        (length,) = struct.unpack_from(">H", head, at + 2)
        if length < 2:
            return f"the first frame's JPEG marker {marker:02x} at byte {at} has an impossible length {length}"
        if marker in _SOF:
            if length < 8:
                return f"the first frame's JPEG frame header (SOF) is too short ({length} bytes)"
            precision, lines, samples_per_line, components = struct.unpack_from(">BHHB", head, at + 4)
            if not 2 <= precision <= 16 or (facts.bits_allocated and precision > facts.bits_allocated):
                return f"the first frame's JPEG precision {precision} is impossible for this data set"
            header = {"columns": samples_per_line, "samples": components}
            if lines:  # 0: the number of lines follows the first scan (DNL)
                header["rows"] = lines
            return _disagree("JPEG", header, facts)
        at += 2 + length


def _jpeg2000(head: bytes, facts: structure.Scan) -> str | None:
    codestream = head
    if head[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n":  # a JP2 file rather than a bare codestream
        found = head.find(b"jp2c")
        if found < 0:
            raise _Short
        codestream = head[found + 4 :]
    if codestream[:4] != b"\xff\x4f\xff\x51":
        return f"the first frame does not start with JPEG 2000 SOC and SIZ markers (it starts {codestream[:4].hex()})"
    if len(codestream) < 42:
        raise _Short
    xsiz, ysiz, xosiz, yosiz = struct.unpack_from(">IIII", codestream, 8)
    (csiz,) = struct.unpack_from(">H", codestream, 40)
    if xosiz >= xsiz or yosiz >= ysiz:
        return f"the first frame's JPEG 2000 size is impossible ({xsiz}x{ysiz} from offset {xosiz},{yosiz})"
    return _disagree("JPEG 2000", {"columns": xsiz - xosiz, "rows": ysiz - yosiz, "samples": csiz}, facts)


def _rle(head: bytes, facts: structure.Scan) -> str | None:
    if len(head) < 64:
        return f"the first RLE frame is {len(head)} bytes, shorter than its 64-byte header"
    count, *offsets = struct.unpack_from("<16I", head, 0)
    expected = (facts.samples or 1) * max(1, ((facts.bits_allocated or 8) + 7) // 8)
    if count != expected:
        return (
            f"the first RLE frame's header gives {count} segments but Samples per Pixel and Bits Allocated "
            f"need {expected}"
        )
    used = offsets[:count]
    size = facts.first_fragment_length or len(head)
    if used[0] != 64 or any(b <= a for a, b in pairwise(used)) or used[-1] >= size:
        return f"the first RLE frame's segment offsets {used} do not fit its {size} bytes"
    return None


def decode_problem(path: Path | str, frame_bytes: int, *, limit: int = DECODE_LIMIT) -> str | None:
    """Why the installed decoders cannot decode the first frame of a file whose compressed frames decode to
    `frame_bytes` each (a flag, not a refusal), or None: also when nothing is compressed (0) or the frame is
    larger than `limit` (not tried: the check must stay cheap next to receiving the instance)."""
    if not 0 < frame_bytes <= limit:
        return None
    from pydicom.pixels import pixel_array  # numpy and the decoder plugins: only when needed

    try:
        pixel_array(str(path), index=0, raw=True)
    except Exception as exc:  # noqa: BLE001 - whatever a decoder raises, the verdict is "did not decode"
        message = " ".join(str(exc).split())
        return f"the first frame did not decode with the portal's decoders: {message[:400]}"
    return None
