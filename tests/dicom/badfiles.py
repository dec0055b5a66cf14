"""Damaged instances for the tests: each is still a file pynetdicom will send as is."""

from __future__ import annotations

from pathlib import Path

from pydicom import dcmread
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
