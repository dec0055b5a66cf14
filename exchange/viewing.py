"""Staff looking at their own trust's images: the share-link viewer's renderer over a copy of the study.

A study is copied once from the trust's PACS (a Celery task, `stage_study_view`) into
SPOOL_DIR/staff-view/<ODS>/<study UID>/<SOP UID>.dcm, the flat layout dicomkit.staged reads, and kept for
STAFF_VIEW_KEEP_SECONDS after it was last opened (beat purges older copies). Thumbnails come from that
copy when there is one, else from one instance fetched on its own. Every view is a 110103 event: once per
series per browser session, as a consultant's views are, and once per study for a thumbnail.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction

from audit import catalogue
from audit.context import Actor
from dicomkit import GatewayError, rendering, staged, webindex
from directory.access import GatewayBusy, Work, gateway_access
from directory.models import Trust

from .services import UID_RE, GatewayUnavailable, query_gateway

log = structlog.get_logger(__name__)
READY, STAGING, FAILED = ".ready", ".staging", ".failed"
STALE_STAGING_SECONDS = 600  # a marker older than this belongs to a worker that died: stage again


class NotViewable(Exception):
    """No such study copy (or not a UID): the caller answers 404."""


def _root() -> Path:
    return Path(settings.SPOOL_DIR) / "staff-view"


def view_dir(trust: Trust, study_uid: str) -> Path:
    if not UID_RE.match(study_uid) or len(study_uid) > 64:
        raise NotViewable(study_uid)
    return _root() / trust.ods_code / study_uid


def view_state(trust: Trust, study_uid: str) -> tuple[str, str]:
    """(`ready`|`staging`|`failed`|`absent`, detail) of the study's copy."""
    folder = view_dir(trust, study_uid)
    if (folder / READY).exists():
        return "ready", ""
    if (folder / FAILED).exists():
        return "failed", (folder / FAILED).read_text(encoding="utf-8", errors="replace")
    marker = folder / STAGING
    if marker.exists() and time.time() - marker.stat().st_mtime < STALE_STAGING_SECONDS:
        return "staging", str(sum(1 for _ in folder.glob("*.dcm")))
    return "absent", ""


def view_request(*, trust: Trust, study_uid: str) -> str:
    """Make sure a copy is ready or on its way; returns the state. Enqueues the copy at most once."""
    state, _ = view_state(trust, study_uid)
    if state == "ready":
        os.utime(view_dir(trust, study_uid) / READY)  # opened now: keep it a while longer
        return state
    if state in ("absent", "failed"):
        folder = view_dir(trust, study_uid)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / FAILED).unlink(missing_ok=True)
        (folder / STAGING).write_text(str(time.time()), encoding="utf-8")
        from .tasks import stage_study_view

        stage_study_view.apply_async((trust.pk, study_uid))  # its queue: CELERY_TASK_ROUTES
        return view_state(trust, study_uid)[0]  # a worker may already have finished
    return state


def stage(trust_id: int, study_uid: str) -> int:
    """Copy the study from the trust's PACS (the task's work). Returns the number of instances."""
    trust = Trust.objects.get(pk=trust_id)
    folder = view_dir(trust, study_uid)
    incoming = folder.parent / f".incoming-{study_uid}"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(incoming, ignore_errors=True)
    count = 0
    subject = f"staff view of {study_uid} at {trust.ods_code}"
    try:
        with (
            gateway_access(query_gateway(trust), work=Work.STAGING, subject=subject) as client,
            client.retrieve(study_uid, spool_dir=incoming, label=f"view-{trust.ods_code}") as retrieval,
        ):
            for item in retrieval:
                sop = item.sop_instance_uid
                if item.study_instance_uid == study_uid and staged.is_uid(sop):
                    os.replace(item.path, folder / f"{sop}.dcm")
                    count += 1
                else:
                    item.path.unlink(missing_ok=True)
    except GatewayBusy:
        raise  # still on its way: the task asks again for a slot (directory.access.retry_task)
    except (GatewayUnavailable, GatewayError) as exc:
        (folder / FAILED).write_text(f"The PACS of {trust.ods_code} could not send the images: {exc}", "utf-8")
        (folder / STAGING).unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(incoming, ignore_errors=True)
    if count:
        staged.manifest(folder)  # built now, in the worker, not on the first page load
        webindex.warm(folder)  # the DICOMweb index the advanced viewer reads (dicomweb/)
        (folder / READY).write_text(str(count), encoding="utf-8")
    else:
        (folder / FAILED).write_text(f"The PACS of {trust.ods_code} holds no images of this study.", "utf-8")
    (folder / STAGING).unlink(missing_ok=True)
    return count


def fail(trust_id: int, study_uid: str, reason: str) -> None:
    """The copy could not be made: the person waiting reads why (and may ask again)."""
    folder = view_dir(Trust.objects.get(pk=trust_id), study_uid)
    (folder / FAILED).write_text(f"The images could not be copied: {reason}", "utf-8")
    (folder / STAGING).unlink(missing_ok=True)


def ready_folders(trust: Trust) -> list[Path]:
    """The trust's copies that are ready to read (the staff DICOMweb root's scope)."""
    base = _root() / trust.ods_code
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if (p / READY).exists())


def purge_stale(now: float | None = None) -> int:
    """Delete copies not opened for STAFF_VIEW_KEEP_SECONDS (beat). Returns how many went."""
    now = now or time.time()
    keep = settings.STAFF_VIEW_KEEP_SECONDS
    removed = 0
    for trust_dir in _root().glob("*") if _root().exists() else []:
        for folder in trust_dir.iterdir():
            markers = [folder / READY, folder / FAILED, folder / STAGING, folder / "thumbnail.png"]
            newest = max((m.stat().st_mtime for m in markers if m.exists()), default=folder.stat().st_mtime)
            if now - newest > keep:
                staged.forget(folder)
                webindex.forget(folder)
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
    return removed


# --- serving the copy ------------------------------------------------------------------------------


def manifest(trust: Trust, study_uid: str) -> dict[str, Any]:
    if view_state(trust, study_uid)[0] != "ready":
        raise NotViewable(study_uid)
    return staged.manifest(view_dir(trust, study_uid))


def instance(trust: Trust, study_uid: str, sop_uid: str) -> Path:
    try:
        return staged.instance_path(view_dir(trust, study_uid), sop_uid)
    except ValueError:
        raise NotViewable(sop_uid) from None


def note_series_viewed(session, *, trust: Trust, study_uid: str, path: Path, actor: Actor, what: str = "") -> None:
    """One 110103 per series per browser session (scrolling would otherwise flood the chain)."""
    header = _series_of(path)
    series_uid = header.get("series", "")
    key = f"{trust.ods_code}:{series_uid or study_uid}"
    seen = session.get("viewed_series", [])
    if key in seen:
        return
    with transaction.atomic():
        catalogue.SERIES_VIEWED.record(
            actor=actor,
            trust=trust.ods_code,
            study_uids=[study_uid],
            nhs_number=header.get("nhs_number", ""),
            patient_id=header.get("patient_id", ""),
            detail={"view": what or "viewer", "series_uid": series_uid},
        )
    session["viewed_series"] = [*seen[-500:], key]


def _series_of(path: Path) -> dict[str, str]:
    from dicomkit.identity import nhs_number_of, text

    try:
        import pydicom

        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - an unreadable header names no series; the renderer reports the file
        return {}
    return {
        "series": text(ds, "SeriesInstanceUID"),
        "nhs_number": nhs_number_of(ds),
        "patient_id": text(ds, "PatientID"),
    }


# --- thumbnails ------------------------------------------------------------------------------------


def study_thumbnail(trust: Trust, study_uid: str) -> tuple[bytes, Path]:
    """A PNG of the middle image of the study's first image series, and the file it came from.

    From the viewing copy when there is one; else one instance is fetched on its own and kept beside the
    PNG. Raises NotViewable when the PACS has no image for it, GatewayUnavailable when it cannot answer."""
    folder = view_dir(trust, study_uid)
    cached = folder / "thumbnail.png"
    source = folder / "thumbnail.dcm"
    if cached.exists() and source.exists():
        os.utime(cached)
        return cached.read_bytes(), source
    if view_state(trust, study_uid)[0] == "ready":
        picked = _middle_of_copy(folder)
        if picked is not None:
            return rendering.thumbnail(picked), picked
    try:
        subject = f"thumbnail of {study_uid} at {trust.ods_code}"
        with gateway_access(query_gateway(trust), work=Work.SEARCH, subject=subject) as client:
            path = _fetch_one(client, study_uid, folder)
    except GatewayError as exc:  # GatewayBusy included: the page says the PACS is busy
        raise GatewayUnavailable(str(exc)) from exc
    if path is None:
        raise NotViewable(study_uid)
    try:
        data = rendering.thumbnail(path)
    except ValueError as exc:
        raise NotViewable(study_uid) from exc
    os.replace(path, source)
    cached.write_bytes(data)
    return data, source


def _middle_of_copy(folder: Path) -> Path | None:
    for study in staged.manifest(folder).get("studies", []):
        for series in study.get("series", []):
            instances = series.get("instances") or []
            if instances:
                return folder / f"{instances[len(instances) // 2]['sop_instance_uid']}.dcm"
    return None


_NOT_IMAGES = {"SR", "KO", "PR", "DOC", "RTSTRUCT", "RTPLAN", "REG", "SEG"}


def _fetch_one(client, study_uid: str, folder: Path) -> Path | None:
    series = [s for s in client.find_series(study_uid) if s.modality not in _NOT_IMAGES]
    series.sort(key=lambda s: (s.series_number is None, s.series_number or 0))
    for chosen in series[:3]:
        instances = client.find_instances(study_uid, chosen.series_instance_uid)
        if not instances:
            continue
        instances.sort(key=lambda i: (i.instance_number is None, i.instance_number or 0, i.sop_instance_uid))
        middle = instances[len(instances) // 2]
        incoming = folder.parent / f".thumb-{study_uid}"
        folder.mkdir(parents=True, exist_ok=True)
        try:
            with client.retrieve(
                study_uid, chosen.series_instance_uid, [middle.sop_instance_uid], spool_dir=incoming
            ) as retrieval:
                for item in retrieval:
                    target = folder / ".thumbnail-incoming.dcm"
                    os.replace(item.path, target)
                    return target
        finally:
            shutil.rmtree(incoming, ignore_errors=True)
    return None
