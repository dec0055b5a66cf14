"""Damaged instances for the tests: each is still a file pynetdicom will send as is."""

from __future__ import annotations

from pathlib import Path

from pydicom import dcmread
from pydicom.filereader import read_file_meta_info
from pydicom.uid import generate_uid


def truncated(source: Path, out: Path, cut: int = 1000) -> Path:
    """The file with its last `cut` bytes gone, but a new SOP Instance UID so it is not a duplicate."""
    ds = dcmread(source)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(out, enforce_file_format=True)
    data = out.read_bytes()
    out.write_bytes(data[:-cut])
    return out


def without_sop_instance_uid(source: Path, out: Path) -> Path:
    """No (0008,0018) in the data set; the file meta still names one, so it can be sent."""
    ds = dcmread(source)
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    del ds.SOPInstanceUID
    ds.save_as(out, enforce_file_format=False)
    return out


def with_unknown_sop_class(source: Path, out: Path) -> Path:
    """The data set claims a SOP class nobody knows; the file meta keeps CT so it can be sent."""
    ds = dcmread(source)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SOPClassUID = "1.2.826.0.1.3680043.9.9999.1"
    ds.save_as(out, enforce_file_format=False)
    return out


def unparseable(source: Path, out: Path) -> Path:
    """Valid file meta followed by bytes that are not a DICOM data set."""
    ds = dcmread(source, stop_before_pixels=True)
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    data = source.read_bytes()
    meta_end = 132 + 12 + int.from_bytes(data[140:144], "little")
    # A sequence of undefined length whose items are garbage: pydicom cannot read past it.
    out.write_bytes(data[:meta_end] + b"\x08\x00\x15\x11SQ\x00\x00\xff\xff\xff\xff" + b"\x01" * 64)
    return out


def changed_body(source: Path, out: Path) -> Path:
    """Same SOP Instance UID, different content."""
    ds = dcmread(source)
    ds.StudyDescription = "edited after sending"
    ds.save_as(out, enforce_file_format=True)
    return out


def with_element_length(source: Path, out: Path, tag: tuple[int, int], length: int) -> Path:
    """An explicit VR element's 2-byte length changed (e.g. Rows' 2 to 0xFFFF, so pydicom reads it as many
    values); a new SOP Instance UID of the same length keeps it from being a duplicate."""
    data = bytearray(source.read_bytes())
    head = tag[0].to_bytes(2, "little") + tag[1].to_bytes(2, "little")
    at = data.index(head, 132 + 12)  # past the File Meta Information
    while data[at + 4 : at + 6] not in (b"US", b"SS", b"IS", b"UI", b"CS"):
        at = data.index(head, at + 1)
    data[at + 6 : at + 8] = length.to_bytes(2, "little")
    out.write_bytes(renamed(bytes(data), source))
    return out


def renamed(data: bytes, source: Path) -> bytes:
    """`data` (read from `source`, maybe changed since) with its SOP Instance UID, in the meta and the data
    set, replaced by a fresh one of the same length: the bytes stay as damaged as they were."""
    old = str(read_file_meta_info(source).MediaStorageSOPInstanceUID).encode()
    new = generate_uid(prefix="1.2.826.0.1.3680043.10.543.")[: len(old)].rstrip(".").encode()
    new = new + b"1" * (len(old) - len(new))
    return data.replace(old, new)


def with_two_values(source: Path, out: Path, keyword: str = "BitsAllocated") -> Path:
    """A well-formed file whose `keyword` (one value in the standard) holds two: 16\\16 for Bits Allocated."""
    ds = dcmread(source)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    value = ds[keyword].value
    ds[keyword].value = [value, value]
    ds.save_as(out, enforce_file_format=True)
    return out


def first_frame_at(data: bytes) -> int:
    """Where the first compressed frame (the fragment after the Basic Offset Table) starts in a file."""
    import io

    from pydicom import dcmread
    from pydicom.encaps import generate_fragments

    frames = list(generate_fragments(dcmread(io.BytesIO(data)).PixelData))
    return data.index(frames[1][:32])


def flipped_in_first_frame(source: Path, out: Path, offset: int, bit: int) -> Path:
    """One bit of the first compressed frame flipped (a header bit flip when `offset` is small)."""
    data = bytearray(source.read_bytes())
    data[first_frame_at(bytes(data)) + offset] ^= 1 << bit
    out.write_bytes(renamed(bytes(data), source))
    return out
