"""Copies of a trust's studies for its own staff to open in the advanced viewer (issue #21).

The advanced viewer asks for every frame, series after series, hundreds of requests a study: it reads a
copy made once from the trust's PACS (a Celery task through the gateway client, as a share link's staging
does, so the gateway-access layer governs it), never the PACS itself, and the same DICOMweb code, scope
checks and metadata cache serve it. The layout is the staff viewer's: SPOOL_DIR/staff-view/<ODS>/<study>/
<SOP>.dcm, flat, with `.ready`, `.staging` or `.failed` markers; copies unopened for
STAFF_VIEW_KEEP_SECONDS are purged by beat.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import structlog
from django.conf import settings

from dicomkit import GatewayError, webindex
from directory.gateways import gateway_client
from directory.models import Trust
from exchange.services import UID_RE, GatewayUnavailable, query_gateway
from sharing import staged

log = structlog.get_logger(__name__)
READY, STAGING, FAILED = ".ready", ".staging", ".failed"
STALE_STAGING_SECONDS = 600  # a marker older than this belongs to a worker that died: copy again


class NotViewable(Exception):
    """Not a UID, or no such copy: the caller answers 404."""


def _root() -> Path:
    return Path(settings.SPOOL_DIR) / "staff-view"


def copy_dir(trust: Trust, study_uid: str) -> Path:
    if not UID_RE.match(study_uid) or len(study_uid) > 64:
        raise NotViewable(study_uid)
    return _root() / trust.ods_code / study_uid


def copy_state(trust: Trust, study_uid: str) -> tuple[str, str]:
    """(`ready`|`staging`|`failed`|`absent`, detail) of the study's copy."""
    folder = copy_dir(trust, study_uid)
    if (folder / READY).exists():
        return "ready", ""
    if (folder / FAILED).exists():
        return "failed", (folder / FAILED).read_text(encoding="utf-8", errors="replace")
    marker = folder / STAGING
    if marker.exists() and time.time() - marker.stat().st_mtime < STALE_STAGING_SECONDS:
        return "staging", str(sum(1 for _ in folder.glob("*.dcm")))
    return "absent", ""


def copy_request(*, trust: Trust, study_uid: str) -> str:
    """Make sure a copy is ready or on its way; returns its state. Enqueues the copy at most once."""
    state, _ = copy_state(trust, study_uid)
    folder = copy_dir(trust, study_uid)
    if state == "ready":
        os.utime(folder / READY)  # opened now: keep it a while longer
        return state
    if state in ("absent", "failed"):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / FAILED).unlink(missing_ok=True)
        (folder / STAGING).write_text(str(time.time()), encoding="utf-8")
        from .tasks import stage_staff_copy

        stage_staff_copy.delay(trust.pk, study_uid)
        return copy_state(trust, study_uid)[0]  # a worker may already have finished
    return state


def ready_folders(trust: Trust) -> list[Path]:
    base = _root() / trust.ods_code
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if (p / READY).exists())


def stage(trust_id: int, study_uid: str, *, client=None) -> int:
    """Copy the study from the trust's PACS (the task's work). Returns the number of instances."""
    trust = Trust.objects.get(pk=trust_id)
    folder = copy_dir(trust, study_uid)
    incoming = folder.parent / f".incoming-{study_uid}"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(incoming, ignore_errors=True)
    count = 0
    try:
        client = client or gateway_client(query_gateway(trust))
        with client.retrieve(study_uid, spool_dir=incoming, label=f"view-{trust.ods_code}") as retrieval:
            for item in retrieval:
                if item.study_instance_uid == study_uid and staged.is_uid(item.sop_instance_uid):
                    os.replace(item.path, folder / f"{item.sop_instance_uid}.dcm")
                    count += 1
                else:
                    item.path.unlink(missing_ok=True)
    except (GatewayUnavailable, GatewayError) as exc:
        (folder / FAILED).write_text(f"The PACS of {trust.ods_code} could not send the images: {exc}", "utf-8")
        (folder / STAGING).unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(incoming, ignore_errors=True)
    if count:
        staged.manifest(folder)  # the built-in viewer's manifest and the DICOMweb index, made now
        webindex.warm(folder)
        (folder / READY).write_text(str(count), encoding="utf-8")
    else:
        (folder / FAILED).write_text(f"The PACS of {trust.ods_code} holds no images of this study.", "utf-8")
    (folder / STAGING).unlink(missing_ok=True)
    return count


def purge_stale(now: float | None = None) -> int:
    """Delete copies not opened for STAFF_VIEW_KEEP_SECONDS (beat). Returns how many went."""
    now = now or time.time()
    removed = 0
    root = _root()
    for trust_dir in root.iterdir() if root.exists() else []:
        for folder in trust_dir.iterdir():
            if folder.name.startswith("."):
                continue
            markers = [folder / READY, folder / FAILED, folder / STAGING]
            newest = max((m.stat().st_mtime for m in markers if m.exists()), default=folder.stat().st_mtime)
            if now - newest > settings.STAFF_VIEW_KEEP_SECONDS:
                staged.forget(folder)
                webindex.forget(folder)
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
    return removed
