"""Bulk migrations between gateways (regional administrators): list the source's studies in a date range,
copy them study by study at a throttled rate within allowed hours, then compare source and destination
study by study. Progress is saved per study, so any crash resumes where it stopped (docs/region.md).

A slice (`run_slice`) holds the job's lease and runs until MIGRATION_SLICE_SECONDS have passed, the
allowed hours end, a clinician's transfer waits (it yields between studies), or the job is done; the task
(region.tasks) then puts it back on the lowest-priority queue. Every PACS call goes through the
gateway-access layer (directory.access): a slot per association, the one retry policy.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import structlog
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts import permissions as perms
from audit.codes import Action, EventID
from audit.context import SYSTEM, Actor
from audit.services import record_event
from dicomkit import GatewayClient, StudyQuery
from directory import access
from directory.access import Work
from directory.models import Gateway
from directory.services import agreement_allows
from portal.enqueue import enqueue_after_commit

from . import windows
from .models import MigrationJob, MigrationStudy
from .selectors import clinical_work_waiting

log = structlog.get_logger(__name__)

Status = MigrationJob.Status
BATCH = 50  # instances per C-STORE association / STOW-RS request
COMPARE_CHUNK = 50  # studies compared under one pair of slots


class Busy(Exception):
    """Another worker holds the job's lease (a second delivery of its task)."""


class Stopped(Exception):
    """The job was paused or cancelled, or another worker took it over: this slice ends at once."""


@dataclass(frozen=True)
class Outcome:
    status: str
    again: float | None = None  # seconds until the task runs the next slice; None: nothing more to do


# --- writing: create, pause, resume, cancel --------------------------------------------------------------


@transaction.atomic
def migration_create(
    *,
    name: str,
    source: Gateway,
    destination: Gateway,
    date_from: date | None = None,
    date_to: date | None = None,
    max_instances_per_second: float = 0,
    allowed_hours: str = "",
    user: Any,
    actor: Actor,
) -> MigrationJob:
    if not perms.may_run_migrations(user):
        raise PermissionDenied("Migrations are for regional administrators.")
    errors: dict[str, str] = {}
    if source.pk == destination.pk:
        errors["destination"] = "Source and destination are the same gateway."
    elif source.trust_id != destination.trust_id and not agreement_allows(source.trust, destination.trust):
        errors["destination"] = (
            f"No active sharing agreement lets {source.trust.ods_code} send to {destination.trust.ods_code}."
        )
    if date_from and date_to and date_from > date_to:
        errors["date_to"] = "The range ends before it starts."
    if max_instances_per_second is None or max_instances_per_second < 0:
        errors["max_instances_per_second"] = "0 (no throttle) or more."
    if errors:
        raise ValidationError(errors)
    windows.parse(allowed_hours)  # ValidationError naming the part it cannot read
    job = MigrationJob.objects.create(
        name=(name or "").strip() or f"{source} → {destination}",
        source=source,
        destination=destination,
        date_from=date_from,
        date_to=date_to,
        max_instances_per_second=max_instances_per_second,
        allowed_hours=allowed_hours.strip(),
        created_by=user,
    )
    _record(job, actor, "created")
    _enqueue(job.pk)
    return job


CHANGES = {
    "pause": (MigrationJob.ACTIVE, Status.PAUSED),
    "resume": ((Status.PAUSED, Status.FAILED), Status.QUEUED),
    "cancel": ((*MigrationJob.ACTIVE, Status.PAUSED, Status.FAILED), Status.CANCELLED),
}


@transaction.atomic
def migration_change(*, job: MigrationJob, change: str, actor: Actor) -> MigrationJob:
    """Pause, resume or cancel. A running slice notices at its next batch and stops."""
    if change not in CHANGES:
        raise ValidationError({"action": f"One of {', '.join(CHANGES)}."})
    allowed_from, to = CHANGES[change]
    job = MigrationJob.objects.select_for_update().get(pk=job.pk)
    if job.status not in allowed_from:
        raise ValidationError({"detail": f"A migration that is {job.get_status_display().lower()} cannot {change}."})
    job.status = to
    job.completed_at = timezone.now() if to == Status.CANCELLED else None
    if change == "resume":
        job.last_error = ""
    job.save(update_fields=["status", "completed_at", "last_error"])
    _record(job, actor, change)
    if change == "resume":
        _enqueue(job.pk)
    return job


def migration_fail(job_id: int, reason: str) -> None:
    """End the job as failed (the retry policy gave up); resuming it carries on from where it stopped."""
    with transaction.atomic():
        job = MigrationJob.objects.select_for_update().get(pk=job_id)
        if job.status in MigrationJob.FINISHED:
            return
        job.status, job.last_error, job.completed_at = Status.FAILED, reason, timezone.now()
        job.lease_owner = ""
        job.save(update_fields=["status", "last_error", "completed_at", "lease_owner"])
        _record(job, SYSTEM, "failed")


def note_error(job_id: int, error: str) -> None:
    MigrationJob.objects.filter(pk=job_id).update(last_error=error)


def _record(job: MigrationJob, actor: Actor, change: str) -> None:
    record_event(
        event_id=EventID.BEGIN_TRANSFERRING,
        action=Action.EXECUTE if change == "created" else Action.UPDATE,
        actor=actor,
        trust=job.source.trust.ods_code,
        peer_trust=job.destination.trust.ods_code,
        detail={
            "migration": job.pk,
            "change": change,
            "source_gateway": str(job.source),
            "destination_gateway": str(job.destination),
            "date_from": str(job.date_from or ""),
            "date_to": str(job.date_to or ""),
        },
    )


def _enqueue(job_id: int) -> None:
    from . import tasks

    enqueue_after_commit(tasks.run_migration, job_id)


# --- the lease: one worker at a time --------------------------------------------------------------------


def claim(job_id: int, owner: str) -> MigrationJob | None:
    """Take the job for this slice; None when there is nothing to run (ended or paused), Busy when another
    worker's lease is fresh."""
    now = timezone.now()
    lease = timedelta(seconds=settings.MIGRATION_LEASE_SECONDS)
    with transaction.atomic():
        job = MigrationJob.objects.select_for_update().select_related("source", "destination").get(pk=job_id)
        if job.status in MigrationJob.FINISHED or job.status == Status.PAUSED:
            return None
        fresh = job.heartbeat_at is not None and job.heartbeat_at > now - lease
        if job.lease_owner and job.lease_owner != owner and fresh:
            raise Busy(job_id)
        job.lease_owner, job.heartbeat_at = owner, now
        job.passes += 1
        job.started_at = job.started_at or now
        if job.status in (Status.QUEUED, Status.WAITING):
            job.status = Status.COPYING if job.listed else Status.LISTING
        job.save(update_fields=["lease_owner", "heartbeat_at", "passes", "started_at", "status"])
    return job


def beat(job_id: int, owner: str, **changes: Any) -> None:
    """Renew the lease (and write `changes`); Stopped when the job is no longer ours or no longer active."""
    updated = MigrationJob.objects.filter(pk=job_id, lease_owner=owner, status__in=MigrationJob.ACTIVE).update(
        heartbeat_at=timezone.now(), **changes
    )
    if not updated:
        raise Stopped(job_id)


def release(job_id: int, owner: str, *, back_in: float = 0, status: str | None = None) -> None:
    """Give the lease up. `back_in`: when the next slice is due, kept in heartbeat_at so the sweeper does
    not send a second one meanwhile."""
    changes: dict[str, Any] = {"lease_owner": "", "heartbeat_at": timezone.now() + timedelta(seconds=back_in)}
    if status:
        changes["status"] = status
    MigrationJob.objects.filter(pk=job_id, lease_owner=owner).exclude(status__in=MigrationJob.FINISHED).exclude(
        status=Status.PAUSED
    ).update(**changes)


# --- one slice ----------------------------------------------------------------------------------------------


def run_slice(job_id: int, *, owner: str) -> Outcome:
    """Run the job until its slice time is up, its hours end, clinicians' work waits, or it is done."""
    job = claim(job_id, owner)
    if job is None:
        return Outcome("ended")
    outcome = Outcome("stopped")
    try:
        outcome = _run(job, owner)
    except Stopped:
        return outcome
    finally:
        status = Status.WAITING if outcome.status == "waiting" else None
        release(job_id, owner, back_in=outcome.again or 0, status=status)
    return outcome


def _run(job: MigrationJob, owner: str) -> Outcome:
    deadline = time.monotonic() + settings.MIGRATION_SLICE_SECONDS
    if not job.listed:
        _list(job, owner)
    pause = _copy_pending(job, owner, deadline)
    if pause is not None:
        return pause
    beat(job.pk, owner, status=Status.COMPARING)
    while True:
        pause = _pause_before_next(job, deadline)
        if pause is not None:
            return pause
        if not _compare_chunk(job, owner):
            break
    _find_extras(job, owner)
    _finish(job, owner)
    return Outcome("completed")


def _copy_pending(job: MigrationJob, owner: str, deadline: float) -> Outcome | None:
    """Copy pending studies one after another, holding a slot at each gateway for the slice (given back
    whenever the slice pauses); the Outcome of the pause, or None once no study is pending."""
    throttle = Throttle(job.max_instances_per_second)
    pending = job.studies.filter(state=MigrationStudy.State.PENDING).order_by("pk")
    if not pending.exists():
        return None
    pause = _pause_before_next(job, deadline)
    if pause is not None:
        return pause
    with _session(job.source, job) as source, _session(job.destination, job) as destination:
        while True:
            study = pending.first()
            if study is None:
                return None
            _copy_study(job, study, owner, throttle, source, destination)
            pause = _pause_before_next(job, deadline)
            if pause is not None:
                return pause


def _pause_before_next(job: MigrationJob, deadline: float) -> Outcome | None:
    """Between studies: outside the allowed hours wait; a clinician's transfer waiting goes first; a slice
    that has run its time goes back on the queue (so the broker's visibility timeout never passes)."""
    wait = windows.seconds_until_allowed(job.allowed_hours)
    if wait:
        return Outcome("waiting", min(wait, 15 * 60))
    if clinical_work_waiting(job):
        MigrationJob.objects.filter(pk=job.pk).update(yields=F("yields") + 1)
        return Outcome("yielded", settings.MIGRATION_YIELD_SECONDS)
    if time.monotonic() > deadline:
        return Outcome("continuing", 0)
    return None


def _session(gateway: Gateway, job: MigrationJob) -> Any:
    return access.gateway_access(gateway, work=Work.MIGRATION, subject=f"migration {job.pk}")


# --- listing ------------------------------------------------------------------------------------------------


def _list(job: MigrationJob, owner: str) -> None:
    """One row per study of the range in the source's index; rows already there are kept as they are."""
    query = StudyQuery(study_date_from=_dicom_date(job.date_from), study_date_to=_dicom_date(job.date_to), limit=0)
    with _session(job.source, job) as source:
        studies = source.find_studies(query)
    rows = [
        MigrationStudy(
            job=job,
            study_instance_uid=s.study_instance_uid,
            study_date=s.study_date[:8],
            modalities="\\".join(s.modalities)[:64],
            source_instances=s.instance_count,
        )
        for s in sorted(studies, key=lambda s: (s.study_date, s.study_instance_uid))
    ]
    MigrationStudy.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
    job.listed = True
    beat(job.pk, owner, listed=True, status=Status.COPYING)
    log.info("migration_listed", migration=job.pk, studies=len(rows))


def _dicom_date(value: date | None) -> str:
    return value.strftime("%Y%m%d") if value else ""


# --- copying one study ----------------------------------------------------------------------------------------


class Throttle:
    """At most `rate` instances a second over the slice (0: no limit)."""

    def __init__(self, rate: float) -> None:
        self.rate, self.sent, self.start = rate, 0, time.monotonic()

    def take(self, n: int) -> None:
        if self.rate <= 0:
            return
        self.sent += n
        delay = self.start + self.sent / self.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def batch(self) -> int:
        return BATCH if self.rate <= 0 else max(1, min(BATCH, int(self.rate)))


def _copy_study(
    job: MigrationJob,
    study: MigrationStudy,
    owner: str,
    throttle: Throttle,
    source: GatewayClient,
    destination: GatewayClient,
) -> None:
    """Retrieve the study into the spool, send it in batches, save the study's progress: one row, once."""
    started = time.monotonic()
    folder = Path(settings.SPOOL_DIR) / "migrations" / str(job.pk) / study.study_instance_uid
    shutil.rmtree(folder, ignore_errors=True)  # a dead worker's leftovers: retrieved again
    folder.mkdir(parents=True, exist_ok=True)
    MigrationStudy.objects.filter(pk=study.pk).update(attempts=F("attempts") + 1)
    copied = failed = size = 0
    errors: list[str] = []
    try:
        landed = _retrieve(job, owner, source, study.study_instance_uid, folder)
        for start in range(0, len(landed), throttle.batch()):
            batch = landed[start : start + throttle.batch()]
            throttle.take(len(batch))
            for result in destination.store(p for p, _ in batch):
                if result.ok:
                    copied += 1
                else:
                    failed += 1
                    errors.append(f"{result.sop_instance_uid}: {result.message or result.status}")
            size += sum(s for p, s in batch)
            beat(job.pk, owner)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    state = MigrationStudy.State.FAILED if failed or not copied else MigrationStudy.State.COPIED
    MigrationStudy.objects.filter(pk=study.pk).update(
        state=state,
        instances_copied=copied,
        instances_failed=failed,
        bytes_copied=size,
        last_error="; ".join(errors[:5]) or ("" if copied else "The source returned no instances."),
        copied_at=timezone.now(),
    )
    beat(job.pk, owner, copy_seconds=F("copy_seconds") + (time.monotonic() - started))


def _retrieve(
    job: MigrationJob, owner: str, source: GatewayClient, study_uid: str, folder: Path
) -> list[tuple[Path, int]]:
    """The whole study landed in `folder` (C-GET, C-MOVE or WADO-RS, as the source's gateway says)."""
    landed = []
    with source.retrieve(study_uid, spool_dir=folder, label=f"migration {job.pk}") as retrieval:
        for n, instance in enumerate(retrieval, 1):
            landed.append((instance.path, instance.size))
            if n % BATCH == 0:
                beat(job.pk, owner)
    return landed


# --- comparing source and destination, study by study -----------------------------------------------------


def uid_hash(uids: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(uids)).encode()).hexdigest()


def _compare_chunk(job: MigrationJob, owner: str) -> bool:
    """Compare the next studies without a verdict; False when none is left."""
    studies = list(
        job.studies.filter(verdict="").exclude(state=MigrationStudy.State.EXTRA).order_by("pk")[:COMPARE_CHUNK]
    )
    if not studies:
        return False
    with _session(job.source, job) as source, _session(job.destination, job) as destination:
        for study in studies:
            at_source = source.find_instance_uids(study.study_instance_uid)
            at_destination = destination.find_instance_uids(study.study_instance_uid)
            study.compared_source_count, study.compared_destination_count = len(at_source), len(at_destination)
            study.source_hash, study.destination_hash = uid_hash(at_source), uid_hash(at_destination)
            study.verdict = verdict(at_source, at_destination)
            study.save(
                update_fields=[
                    "compared_source_count",
                    "compared_destination_count",
                    "source_hash",
                    "destination_hash",
                    "verdict",
                ]
            )
            beat(job.pk, owner)
    return True


def verdict(at_source: set[str], at_destination: set[str]) -> str:
    V = MigrationStudy.Verdict
    if at_source and not at_destination:
        return V.MISSING
    if len(at_source) != len(at_destination):
        return V.COUNT_MISMATCH if at_source else V.EXTRA
    return V.OK if uid_hash(at_source) == uid_hash(at_destination) else V.HASH_MISMATCH


def _find_extras(job: MigrationJob, owner: str) -> None:
    """Studies of the range the destination holds and the source does not."""
    query = StudyQuery(study_date_from=_dicom_date(job.date_from), study_date_to=_dicom_date(job.date_to), limit=0)
    with _session(job.destination, job) as destination:
        there = destination.find_studies(query)
    known = set(job.studies.values_list("study_instance_uid", flat=True))
    extras = [
        MigrationStudy(
            job=job,
            study_instance_uid=s.study_instance_uid,
            study_date=s.study_date[:8],
            modalities="\\".join(s.modalities)[:64],
            state=MigrationStudy.State.EXTRA,
            verdict=MigrationStudy.Verdict.EXTRA,
            compared_destination_count=s.instance_count,
        )
        for s in there
        if s.study_instance_uid not in known
    ]
    MigrationStudy.objects.bulk_create(extras, ignore_conflicts=True, batch_size=500)
    beat(job.pk, owner)


def _finish(job: MigrationJob, owner: str) -> None:
    from .selectors import report_summary

    summary = report_summary(job)
    with transaction.atomic():
        done = MigrationJob.objects.filter(pk=job.pk, lease_owner=owner, status=Status.COMPARING).update(
            status=Status.COMPLETED, completed_at=timezone.now(), report=summary, lease_owner=""
        )
        if not done:
            raise Stopped(job.pk)
        _record(job, SYSTEM, "completed")
    log.info("migration_completed", migration=job.pk, **summary)


# --- the sweeper -------------------------------------------------------------------------------------------------


def sweep() -> int:
    """Hand jobs whose worker went silent (a crash, a lost message) to a worker again."""
    now = timezone.now()
    lease = timedelta(seconds=settings.MIGRATION_LEASE_SECONDS)
    stalled = MigrationJob.objects.filter(status__in=MigrationJob.ACTIVE).filter(heartbeat_at__lt=now - 2 * lease)
    never = MigrationJob.objects.filter(status=Status.QUEUED, heartbeat_at__isnull=True, created_at__lt=now - 5 * lease)
    count = 0
    for job_id in set(stalled.values_list("pk", flat=True)) | set(never.values_list("pk", flat=True)):
        _enqueue(job_id)
        count += 1
    return count
