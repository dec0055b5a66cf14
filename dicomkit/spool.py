"""Durable file writes: temp file, fsync, atomic rename, fsync the folder.

An instance is only acknowledged once it is on disk under its final name, so a crash leaves either
the whole file or none of it (plus, at worst, a `.tmp-*` file that `sweep_temp_files` removes).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from .structure import read_meta
from .validate import is_uid

TEMP_PREFIX = ".tmp-"
CHUNK = 1024 * 1024


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_name_for(uid: str, suffix: str = ".dcm") -> str:
    """A safe file name for a UID that came over the network (never trust it as a path)."""
    if is_uid(uid):
        return f"{uid}{suffix}"
    return f"invalid-{hashlib.sha256(uid.encode('utf-8', 'replace')).hexdigest()[:32]}{suffix}"


def temp_path(folder: Path, suffix: str = ".dcm") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{TEMP_PREFIX}{uuid.uuid4().hex}{suffix}"


def write_durably(
    path: Path, chunks: Iterable[bytes | memoryview], *, sync: bool = True, digest: hashlib._Hash | None = None
) -> int:
    """Write chunks to `path` (a temp name) and fsync it (unless `sync` is False); return the size.
    `digest` is fed the same bytes, which saves reading the file again to hash it."""
    size = 0
    with open(path, "wb") as fh:
        for chunk in chunks:
            fh.write(chunk)
            if digest is not None:
                digest.update(chunk)
            size += len(chunk)
        fh.flush()
        if sync:
            os.fsync(fh.fileno())
    return size


def commit(temp: Path, final: Path, *, sync: bool = True) -> Path:
    """Atomically give a fsynced temp file its final name (across file systems if need be)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(temp, final)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        # Different file system: copy next to the target first so the rename stays atomic.
        staged = temp_path(final.parent, final.suffix)
        with open(temp, "rb") as src, open(staged, "wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(staged, final)
        temp.unlink(missing_ok=True)
    if sync:
        fsync_dir(final.parent)
    return final


def copy_stream(src: BinaryIO, dst: BinaryIO, digest: hashlib._Hash | None = None) -> int:
    size = 0
    while chunk := src.read(CHUNK):
        dst.write(chunk)
        if digest is not None:
            digest.update(chunk)
        size += len(chunk)
    return size


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def dataset_sha256(path: Path) -> str:
    """sha256 of a DICOM file's data set, skipping preamble and File Meta Information.

    The meta differs between senders of the very same instance (source AE, implementation
    UID), so identity of content is judged on the data set alone.
    """
    meta = read_meta(path)
    offset = meta.dataset_offset if meta is not None else 0  # no readable meta group: hash the whole file
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        fh.seek(offset)
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sweep_temp_files(folder: Path) -> int:
    """Remove `.tmp-*` leftovers of a crash; returns how many went."""
    removed = 0
    if folder.is_dir():
        for path in folder.rglob(f"{TEMP_PREFIX}*"):
            path.unlink(missing_ok=True)
            removed += 1
    return removed
