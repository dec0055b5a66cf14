"""Copy a share link's studies from the source gateway into the portal's own storage, so the viewer never
loads the trust's PACS: SPOOL_DIR/share/<link id>/<SOPInstanceUID>.dcm (flat, as dicomkit.staged reads it).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import structlog
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from dicomkit import GatewayClient, Study, StudyQuery
from dicomkit.nhs import is_valid as is_valid_nhs_number
from directory.access import Work, gateway_access

from .models import ShareLink, Staging

log = structlog.get_logger(__name__)
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
CHECK_EVERY = 16  # instances between looks at whether the link was revoked meanwhile


class Stopped(Exception):
    """The link was revoked or expired while its studies were being copied."""


def share_dir(link_id: int) -> Path:
    return Path(settings.SHARE_DIR) / str(int(link_id))


def _incoming_dir(link_id: int) -> Path:
    # Outside the link's folder, so a half-received file never appears in the viewer's manifest.
    return Path(settings.SHARE_DIR) / f".incoming-{int(link_id)}"


def stage(link_id: int) -> str:
    """Copy every instance of the link's studies, holding one of the source gateway's slots. Returns the
    staging status; raises GatewayError (GatewayBusy while the gateway is full)."""
    link = ShareLink.objects.select_related("gateway", "gateway__trust").get(pk=link_id)
    if link.revoked_at or link.is_expired:
        purge(link)
        return "stopped"
    if link.staging_status == Staging.READY:
        return Staging.READY
    with gateway_access(link.gateway, work=Work.STAGING, subject=f"share link {link.pk}") as client:
        return _stage(link, client)


def _stage(link: ShareLink, client: GatewayClient) -> str:
    folder, incoming = share_dir(link.pk), _incoming_dir(link.pk)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(incoming, ignore_errors=True)
    counts = _plan(link, client)
    if counts is None:
        return Staging.FAILED
    if not any(counts.values()):
        fail(link.pk, f"{link.gateway.name} holds no instances of these studies.")
        return Staging.FAILED
    try:
        for study_uid in link.study_instance_uids:
            if counts[study_uid]:  # asking for a study the source does not hold only earns an error status
                _copy_study(link, client, study_uid, folder, incoming)
    except Stopped:
        purge(ShareLink.objects.get(pk=link.pk))
        return "stopped"
    finally:
        shutil.rmtree(incoming, ignore_errors=True)
    missing_studies = [uid for uid, n in counts.items() if not n]
    return _finish(link, folder, missing_studies)


def _plan(link: ShareLink, client: GatewayClient) -> dict[str, int] | None:
    """Count what is to come (progress needs a total) and note the patient for the audit trail. None
    (staging failed, with the reason) when the studies are more than one patient's: every view of the
    link is audited against its one patient, and a second opinion is asked about one patient."""
    counts = {}
    patients: dict[tuple[str, str], Study] = {}
    for study_uid in link.study_instance_uids:
        counts[study_uid] = len(client.find_instances(study_uid))
        found = client.find_studies(StudyQuery(study_instance_uid=study_uid, limit=1))
        if found:
            patients.setdefault((found[0].patient_id, found[0].issuer_of_patient_id), found[0])
    if len(patients) > 1:
        fail(
            link.pk,
            f"These studies belong to {len(patients)} different patients; a link shares one patient's studies. "
            "Share each patient's studies in a link of their own.",
        )
        return None
    if patients and not link.patient_id:
        (patient,) = patients.values()
        link.patient_id = patient.patient_id[:64]
        nhs = patient.nhs_number
        link.nhs_number = nhs if nhs and is_valid_nhs_number(nhs) else ""
    link.instances_total = sum(counts.values())
    # A retry starts from what an earlier attempt already copied (the same files are simply replaced).
    link.instances_staged = sum(1 for _ in share_dir(link.pk).glob("*.dcm"))
    link.staging_status = Staging.STAGING
    link.staging_error = ""
    link.staging_heartbeat_at = timezone.now()
    link.save(
        update_fields=[
            "instances_total",
            "instances_staged",
            "staging_status",
            "staging_error",
            "staging_heartbeat_at",
            "patient_id",
            "nhs_number",
        ]
    )
    return counts


def _copy_study(link: ShareLink, client: GatewayClient, study_uid: str, folder: Path, incoming: Path) -> None:
    with client.retrieve(study_uid, spool_dir=incoming, label=f"share-{link.pk}") as retrieval:
        for count, item in enumerate(retrieval, start=1):
            sop = item.sop_instance_uid
            # Only instances of the link's own study, under a name the viewer can look up: its scope.
            if item.study_instance_uid == study_uid and _UID.match(sop) and len(sop) <= 64:
                target = folder / f"{sop}.dcm"
                already = target.exists()
                try:
                    os.replace(item.path, target)
                except FileNotFoundError:
                    raise Stopped from None  # revocation purged the folder under us
                counted = {} if already else {"instances_staged": F("instances_staged") + 1}
                ShareLink.objects.filter(pk=link.pk).update(staging_heartbeat_at=timezone.now(), **counted)
            else:
                item.path.unlink(missing_ok=True)
            if count % CHECK_EVERY == 0:
                _check_still_wanted(link.pk)
    summary = retrieval.summary
    if summary.failed or summary.quarantined:
        log.warning(
            "share_staging_incomplete", link_id=link.pk, failed=summary.failed, damaged=len(summary.quarantined)
        )


def _check_still_wanted(link_id: int) -> None:
    link = ShareLink.objects.only("revoked_at", "expires_at").get(pk=link_id)
    if link.revoked_at or link.is_expired:
        raise Stopped


def _finish(link: ShareLink, folder: Path, missing_studies: list[str]) -> str:
    staged = sum(1 for _ in folder.glob("*.dcm"))
    link.refresh_from_db()
    link.instances_staged = staged
    if staged == 0:
        link.staging_status = Staging.FAILED
        link.staging_error = f"{link.gateway.name} holds no instances of these studies."
    else:
        link.staging_status = Staging.READY
        link.staged_at = timezone.now()
        missing = max(link.instances_total - staged, 0)
        notes = [f"{missing} instance(s) could not be copied from the source."] if missing else []
        if missing_studies:
            notes.append(f"The source holds no instances of {', '.join(missing_studies)}.")
        link.staging_error = " ".join(notes)
        _warm_manifest(folder)
    link.save(update_fields=["instances_staged", "staging_status", "staging_error", "staged_at"])
    if link.revoked_at or link.is_expired:
        purge(link)  # revoked while we finished: the purge at revocation may have run before our last file
    return link.staging_status


def _warm_manifest(folder: Path) -> None:
    """Build the viewer's manifest and the DICOMweb index (dicomkit.webindex) now, in the worker, rather
    than on the consultant's first page load or metadata call."""
    try:
        from dicomkit import staged, webindex

        staged.manifest(folder)
        webindex.warm(folder)
    except Exception:
        log.exception("share_manifest_warm_failed", folder=str(folder))


def fail(link_id: int, reason: str) -> None:
    ShareLink.objects.filter(pk=link_id).update(staging_status=Staging.FAILED, staging_error=reason[:2000])


def note_retry(link_id: int, error: str) -> None:
    """A transient error: the link page says why its images are not ready yet; staging tries again."""
    ShareLink.objects.filter(pk=link_id).exclude(staging_status__in=(Staging.READY, Staging.FAILED)).update(
        staging_error=f"{error} Trying again."[:2000]
    )


def purge(link: ShareLink) -> bool:
    """Delete the staged copy. Returns whether the link's purge was recorded now."""
    shutil.rmtree(share_dir(link.pk), ignore_errors=True)
    shutil.rmtree(_incoming_dir(link.pk), ignore_errors=True)
    return bool(ShareLink.objects.filter(pk=link.pk, purged_at__isnull=True).update(purged_at=timezone.now()))
