"""Media types for WADO-RS (PS3.18 8.7): reading Accept, choosing what to send, and multipart/related
bodies streamed part by part (a whole study is never held in memory)."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
from django.http import StreamingHttpResponse
from pydicom.uid import ExplicitVRLittleEndian

EXPLICIT_LE = str(ExplicitVRLittleEndian)
NATIVE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}
CHUNK = 1024 * 1024
# The media type of a compressed frame, by its transfer syntax (PS3.18 Table 8.7.3-5).
FRAME_MEDIA_TYPES = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "image/x-dicom-rle",
}


@dataclass(frozen=True)
class Range:
    """One media range of an Accept header; for multipart/related, `type` is the part's media type."""

    media: str
    part: str
    transfer_syntax: str | None

    def takes(self, media: str, transfer_syntax: str, *, default_ts: str) -> bool:
        wanted = self.part or self.media
        if wanted not in ("*/*", media) and not (wanted.endswith("/*") and media.startswith(wanted[:-1])):
            return False
        if self.transfer_syntax is None:
            # No transfer syntax named: DICOM and octet-stream bodies default to Explicit VR Little Endian,
            # an image media type to whatever syntax makes it (PS3.18 8.7.3.5.2).
            return transfer_syntax == default_ts if media in ("application/dicom", "application/octet-stream") else True
        return self.transfer_syntax == "*" or transfer_syntax in self.transfer_syntax.split(",")


def ranges(accept: str | None) -> list[Range]:
    """The Accept header's ranges; none given means anything (as `*/*`)."""
    found = []
    for item in (accept or "*/*").split(","):
        media, *params = (p.strip() for p in item.split(";"))
        values = {}
        for param in params:
            name, _, value = param.partition("=")
            values[name.strip().lower()] = value.strip().strip('"')
        media = media.lower()
        # multipart/related without a type: the resource's default part type, i.e. any we offer.
        part = (values.get("type", "").lower() or "*/*") if media == "multipart/related" else ""
        found.append(Range(media, part, values.get("transfer-syntax")))
    return found


def choose(accept: str | None, offers: Iterable[tuple[str, str]], *, default_ts: str) -> tuple[str, str] | None:
    """The first of our `offers` (media type, transfer syntax), in our order, that some range takes."""
    wanted = ranges(accept)
    for media, ts in offers:
        if any(r.takes(media, ts, default_ts=default_ts) or (r.media == "*/*" and not r.part) for r in wanted):
            return media, ts
    return None


def accepts_json(accept: str | None) -> bool:
    for r in ranges(accept):
        if r.media in ("*/*", "application/*", "application/json", "application/dicom+json"):
            return True
    return False


def accepts_single(accept: str | None, media: str) -> bool:
    """Whether a plain (not multipart) body of `media` is acceptable."""
    return any(
        r.media in (media, "*/*") or (r.media.endswith("/*") and media.startswith(r.media[:-1])) for r in ranges(accept)
    )


class Multipart:
    """A multipart/related body built from parts of bytes or files, streamed."""

    def __init__(self, part_type: str, transfer_syntax: str | None = None) -> None:
        self.boundary = uuid.uuid4().hex
        self.part_type = part_type
        self.transfer_syntax = transfer_syntax
        self.parts: list[tuple[str, bytes | Path, str]] = []

    def add(self, content: bytes | Path, content_type: str, location: str = "") -> None:
        self.parts.append((content_type, content, location))

    def content_type(self) -> str:
        value = f'multipart/related; type="{self.part_type}"'
        if self.transfer_syntax:
            value += f"; transfer-syntax={self.transfer_syntax}"
        return f"{value}; boundary={self.boundary}"

    def __iter__(self) -> Iterator[bytes]:
        for content_type, content, location in self.parts:
            head = f"--{self.boundary}\r\nContent-Type: {content_type}\r\n"
            if location:
                head += f"Content-Location: {location}\r\n"
            yield (head + "\r\n").encode()
            if isinstance(content, Path):
                with open(content, "rb") as fh:
                    while chunk := fh.read(CHUNK):
                        yield chunk
            else:
                yield content
            yield b"\r\n"
        yield f"--{self.boundary}--\r\n".encode()

    def response(self, status: int = 200) -> StreamingHttpResponse:
        return StreamingHttpResponse(iter(self), content_type=self.content_type(), status=status)


def as_explicit_little_endian(path: Path) -> bytes:
    """The instance in Explicit VR Little Endian (decompressed if need be), for a client that asks for it."""
    ds = pydicom.dcmread(path)
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        ds.decompress()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, implicit_vr=False, little_endian=True, enforce_file_format=True)
    return out.getvalue()


def decoded_frame(path: Path, number: int, frames: int) -> bytes:
    """Frame `number` (1-based) decoded to native little-endian bytes, for compressed or big-endian data
    a client will not take as stored."""
    from pydicom.pixels import pixel_array

    if not 1 <= number <= frames:
        raise ValueError(f"the instance has no frame {number}")
    array = pixel_array(str(path), index=number - 1 if frames > 1 else None, raw=True)
    return array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
