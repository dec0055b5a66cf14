"""multipart/related for DICOMweb, streamed both ways: parse WADO-RS answers chunk by chunk, and
produce STOW-RS bodies that read files as they are sent. Neither holds more than a chunk in memory.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from .errors import ProtocolError

MAX_HEADER_BYTES = 64 * 1024
CHUNK = 1024 * 1024

Event = tuple[Literal["headers"], dict[str, str]] | tuple[Literal["data"], bytes] | tuple[Literal["end"], None]


def boundary_of(content_type: str) -> str:
    """The boundary parameter of a multipart Content-Type header (quoted or not)."""
    match = re.search(r'boundary=(?:"([^"]+)"|([^;\s]+))', content_type or "", re.IGNORECASE)
    if not match or not content_type.lower().startswith("multipart/"):
        raise ProtocolError(f"expected a multipart answer, got Content-Type {content_type!r}.", permanent=True)
    return match.group(1) or match.group(2)


def _parse_headers(raw: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in raw.decode("latin-1").split("\r\n"):
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return headers


def iter_events(chunks: Iterable[bytes], boundary: str) -> Iterator[Event]:
    """Turn a multipart body into ("headers", dict), ("data", bytes)..., ("end", None) per part.

    The delimiter is CRLF "--" boundary; we start the buffer with CRLF so a body that opens with
    the boundary (no preamble) matches the same way.
    """
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    keep = len(delimiter) - 1
    buf = bytearray(b"\r\n")
    state = "preamble"
    for chunk in chunks:
        buf += chunk
        while True:
            if state == "preamble":
                at = buf.find(delimiter)
                if at < 0:
                    del buf[:-keep]
                    break
                del buf[: at + len(delimiter)]
                state = "after-boundary"
            if state == "after-boundary":
                if len(buf) < 2:
                    break
                if buf[:2] == b"--":
                    return
                eol = buf.find(b"\r\n")
                if eol < 0:
                    break
                del buf[: eol + 2]  # transport padding after the boundary, then CRLF
                state = "headers"
            if state == "headers":
                if buf[:2] == b"\r\n":
                    headers, consumed = {}, 2
                else:
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        if len(buf) > MAX_HEADER_BYTES:
                            raise ProtocolError("multipart part headers are implausibly long.")
                        break
                    headers, consumed = _parse_headers(bytes(buf[:end])), end + 4
                del buf[:consumed]
                yield ("headers", headers)
                state = "body"
            if state == "body":
                at = buf.find(delimiter)
                if at < 0:
                    if len(buf) > keep:
                        yield ("data", _take(buf, len(buf) - keep))
                        del buf[:-keep]
                    break
                if at:
                    yield ("data", _take(buf, at))
                del buf[: at + len(delimiter)]
                yield ("end", None)
                state = "after-boundary"
    raise ProtocolError("the multipart answer ended before its closing boundary (connection cut?).")


def _take(buf: bytearray, n: int) -> bytes:
    """The first n bytes, copied once (slicing the bytearray first would copy them twice)."""
    with memoryview(buf) as view:
        return bytes(view[:n])


class MultipartBody:
    """A STOW-RS request body over files, read lazily; `len()` is known so no chunked encoding.

    An iterable of chunks of up to CHUNK bytes, deliberately without read(): given a file-like body,
    http.client sends it 8 KiB at a time (a call and a system call each, ~20,000 per 160 MB), and an
    io.IOBase would have requests call its tell(), fail, and fall back to chunked transfer encoding,
    which not every DICOMweb server accepts.
    """

    def __init__(self, paths: Iterable[Path], *, part_type: str = "application/dicom") -> None:
        self.boundary = f"dicom-{uuid.uuid4().hex}"
        head = f"--{self.boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode()
        self._segments: list[bytes | Path] = []
        for path in paths:
            self._segments += [head, Path(path), b"\r\n"]
        self._segments.append(f"--{self.boundary}--\r\n".encode())
        self._length = sum(len(s) if isinstance(s, bytes) else os.path.getsize(s) for s in self._segments)

    @property
    def content_type(self) -> str:
        return f'multipart/related; type="application/dicom"; boundary={self.boundary}'

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes | bytearray]:
        pending = b""  # boundaries and part headers ride with the next file's first chunk
        for segment in self._segments:
            if isinstance(segment, bytes):
                pending += segment
                continue
            with open(segment, "rb", buffering=0) as fh:
                left = os.fstat(fh.fileno()).st_size
                while left > 0:
                    # Read straight in behind the pending bytes: each byte is copied once on its way.
                    chunk = bytearray(len(pending) + min(left, CHUNK))
                    chunk[: len(pending)] = pending
                    with memoryview(chunk) as view:
                        got = fh.readinto(view[len(pending) :]) or 0
                    if not got:
                        raise ProtocolError(f"{segment} shrank while it was being sent.")
                    del chunk[len(pending) + got :]
                    left -= got
                    pending = b""
                    yield chunk
        if pending:
            yield pending
