"""Reading the region's state: a migration's progress and report, and whether clinicians' work waits."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta

from django.db.models import Count, Q, Sum
from django.utils import timezone

from directory.models import GatewayWaiter
from transfers.models import BULK, Status, Transfer

from .models import MigrationJob, MigrationStudy

# A transfer no worker has started yet, younger than this, is waiting for a worker process: a migration
# between studies gives its own up. An older one waits for something else (a busy or failing gateway).
FRESH_CLINICAL = timedelta(minutes=2)
WAITER_FRESH = timedelta(seconds=30)


def clinical_work_waiting(job: MigrationJob) -> bool:
    """Is a clinician's transfer waiting that this migration stands in the way of: one at either of its
    gateways, or a new one waiting for a worker? (Then the migration yields between studies.)"""
    now = timezone.now()
    gateways = (job.source_id, job.destination_id)
    queued = Transfer.objects.filter(status=Status.QUEUED, first_transient_error_at__isnull=True).exclude(priority=BULK)
    at_ours = Q(source_gateway_id__in=gateways) | Q(destination_gateway_id__in=gateways)
    new = Q(attempts=0, created_at__gte=now - FRESH_CLINICAL)
    if queued.filter(at_ours | new).exists():
        return True
    waiters = GatewayWaiter.objects.filter(gateway_id__in=gateways, seen_at__gte=now - WAITER_FRESH)
    return waiters.exclude(work="migration").exclude(subject__in=_background_subjects()).exists()


def _background_subjects() -> list[str]:
    running = Transfer.objects.filter(priority=BULK, status=Status.QUEUED).values_list("pk", flat=True)[:500]
    return [f"transfer {pk}" for pk in running]


@dataclass(frozen=True)
class Progress:
    studies_total: int
    studies_done: int
    studies_failed: int
    instances_total: int
    instances_done: int
    bytes_done: int
    copy_seconds: float
    instances_per_second: float | None
    studies_per_hour: float | None
    eta_seconds: float | None

    @property
    def gigabytes(self) -> float:
        return self.bytes_done / 1e9

    @property
    def percent(self) -> int:
        return int(100 * self.studies_done / self.studies_total) if self.studies_total else 0

    def as_dict(self) -> dict:
        return {**asdict(self), "gigabytes": round(self.gigabytes, 3)}


def migration_progress(job: MigrationJob) -> Progress:
    State = MigrationStudy.State
    figures = job.studies.exclude(state=State.EXTRA).aggregate(
        total=Count("pk"),
        done=Count("pk", filter=Q(state__in=(State.COPIED, State.FAILED))),
        failed=Count("pk", filter=Q(state=State.FAILED)),
        listed=Sum("source_instances"),
        copied=Sum("instances_copied"),
        size=Sum("bytes_copied"),
        pending_instances=Sum("source_instances", filter=Q(state=State.PENDING)),
    )
    done, seconds = figures["copied"] or 0, job.copy_seconds
    rate = done / seconds if seconds > 0 and done else None
    studies_rate = figures["done"] * 3600 / seconds if seconds > 0 and figures["done"] else None
    eta = (figures["pending_instances"] or 0) / rate if rate else None
    return Progress(
        studies_total=figures["total"],
        studies_done=figures["done"],
        studies_failed=figures["failed"],
        instances_total=figures["listed"] or 0,
        instances_done=done,
        bytes_done=figures["size"] or 0,
        copy_seconds=round(seconds, 1),
        instances_per_second=round(rate, 2) if rate else None,
        studies_per_hour=round(studies_rate, 1) if studies_rate else None,
        eta_seconds=round(eta) if eta is not None else None,
    )


def report_summary(job: MigrationJob) -> dict[str, int]:
    """The comparison, counted: studies, and how many of them are ok, missing, extra or mismatched."""
    V = MigrationStudy.Verdict
    counts = dict(job.studies.values_list("verdict").annotate(n=Count("pk")).values_list("verdict", "n"))
    return {
        "studies": sum(counts.values()),
        "ok": counts.get(V.OK, 0),
        "missing": counts.get(V.MISSING, 0),
        "extra": counts.get(V.EXTRA, 0),
        "count_mismatch": counts.get(V.COUNT_MISMATCH, 0),
        "hash_mismatch": counts.get(V.HASH_MISMATCH, 0),
        "failed_to_copy": job.studies.filter(state=MigrationStudy.State.FAILED).count(),
    }
