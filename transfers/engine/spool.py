"""Where a pass keeps a transfer's instances between retrieving and storing them."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import structlog
from django.conf import settings

log = structlog.get_logger(__name__)

# Errors of the worker's own disk (not of a gateway): the next pass may find room.
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)


def spool_dir(transfer_id: int, *, shared: bool = False) -> Path:
    """The scratch folder (TRANSFER_SCRATCH_DIR, RAM-backed where deployed so) while it has room, else the
    disk spool. `shared`: the DICOM receiver must write there too (C-MOVE lands in it), so only SPOOL_DIR
    will do: a worker's scratch tmpfs is its own."""
    if shared or not settings.TRANSFER_SCRATCH_DIR:
        return disk_spool(transfer_id)
    scratch = Path(settings.TRANSFER_SCRATCH_DIR)
    try:
        scratch.mkdir(parents=True, exist_ok=True)
        room = shutil.disk_usage(scratch).free
    except OSError:
        room = 0
    if room >= settings.TRANSFER_SCRATCH_RESERVE:
        return scratch / str(transfer_id)
    log.warning("transfer_scratch_full", scratch=str(scratch), free_bytes=room)
    return disk_spool(transfer_id)


def disk_spool(transfer_id: int) -> Path:
    return Path(settings.SPOOL_DIR) / "transfers" / str(transfer_id)


def every_spool(transfer_id: int) -> set[Path]:
    """Every folder a pass of the transfer may have used on this host (for a dead pass's leftovers)."""
    folders = {disk_spool(transfer_id)}
    if settings.TRANSFER_SCRATCH_DIR:
        folders.add(Path(settings.TRANSFER_SCRATCH_DIR) / str(transfer_id))
    return folders


def disk_error(exc: OSError) -> bool:
    """Whether an OSError is the spool's (a file it could not write), not a socket's (requests' errors are
    OSErrors too)."""
    return exc.filename is not None or exc.errno in DISK_ERRORS
