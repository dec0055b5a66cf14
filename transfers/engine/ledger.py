"""The per-instance ledger (TransferInstance rows): the database's record of what a transfer holds,
what is on its way and what the destination has stored. What the ledger marks stored is never sent
again, so a rerun after a crash, a retry or a second delivery of the task resumes where the last one
stopped. Written only by the thread that runs the transfer.

The hot paths (a write per batch) are single statements of SQL of their own: the ORM's bulk_update
builds a CASE per field and row, and each round trip of this thread costs the other threads' time too.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from django.db import connections, router, transaction
from django.db.models import F, Field
from django.utils import timezone

from dicomkit import Instance, RetrievedInstance, StoreResult
from dicomkit.spool import sha256_of

from ..models import DELIVERED, InstanceState, Transfer, TransferInstance
from .errors import TransientTransferError

MAX_INSTANCE_ATTEMPTS = 3  # passes an instance gets before a transient refusal counts as failure
MOVING = (InstanceState.PENDING, InstanceState.RETRIEVED)


def add_planned(
    transfer: Transfer, study_uid: str, instances: Iterable[Instance], present: Collection[str] = ()
) -> None:
    """Rows for the instances the source's index lists (those already moving have theirs); those in
    `present` (the destination's own listing) are `already_present` from the start: never sent."""
    TransferInstance.objects.bulk_create(
        [
            TransferInstance(
                transfer=transfer,
                sop_instance_uid=i.sop_instance_uid,
                study_instance_uid=study_uid,
                series_instance_uid=i.series_instance_uid,
                state=InstanceState.ALREADY_PRESENT if i.sop_instance_uid in present else InstanceState.PENDING,
            )
            for i in instances
        ],
        ignore_conflicts=True,
    )
    if present:  # rows that were already there (a resumed pass) and still waiting
        transfer.instances.filter(sop_instance_uid__in=list(present), state__in=MOVING).update(
            state=InstanceState.ALREADY_PRESENT, last_error="", updated_at=timezone.now()
        )


def study_rows(transfer: Transfer, study_uid: str) -> int:
    return transfer.instances.filter(study_instance_uid=study_uid).count()


def study_todo(transfer: Transfer, study_uid: str) -> tuple[int, list[str]]:
    """How many rows the study has, and the SOP Instance UIDs of those still to send."""
    rows = transfer.instances.filter(study_instance_uid=study_uid)
    states = list(rows.values_list("state", flat=True))
    todo = list(rows.filter(state__in=MOVING).values_list("sop_instance_uid", flat=True))
    return len(states), todo


def has_rows(transfer: Transfer, study_uid: str) -> bool:
    return transfer.instances.filter(study_instance_uid=study_uid).exists()


def add_error(transfer: Transfer, **entry: str) -> None:
    """An error about the transfer as a whole (not one instance's), listed once."""
    with transaction.atomic():
        locked = Transfer.objects.select_for_update().get(pk=transfer.pk)
        if entry not in locked.errors:
            locked.errors = [*locked.errors, entry]
            locked.save(update_fields=["errors"])
        transfer.errors = locked.errors


def _field(name: str) -> Field[Any, Any]:
    field = TransferInstance._meta.get_field(name)
    assert isinstance(field, Field)  # noqa: S101 - a concrete column, not a relation's reverse side
    return field


def update_each(rows: list[TransferInstance], fields: list[str]) -> None:
    """Write `fields` (and updated_at) of each row with one UPDATE run for every row (executemany).
    The ORM's bulk_update builds a CASE per field and row: profiled, it cost more of the engine's time
    than sending the images."""
    if not rows:
        return
    now = timezone.now()
    meta = TransferInstance._meta
    columns = [_field(name) for name in [*fields, "updated_at"]]
    connection = connections[router.db_for_write(TransferInstance)]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(f.column or f.name)} = %s" for f in columns)
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(_field('id').column or 'id')} = %s"  # noqa: S608 - names from the model
    params = []
    for row in rows:
        row.updated_at = now
        params.append([f.get_db_prep_save(getattr(row, f.attname), connection) for f in columns] + [row.pk])
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def mark_retrieved(transfer: Transfer, batch: list[RetrievedInstance]) -> list[RetrievedInstance]:
    """Ledger rows to `retrieved` (size, checksum); returns what still needs sending.

    One statement, an upsert: rows the plan wrote are updated unless stored or failed already; rows it
    did not (the source holds more than its index answered, or the plan is still being listed) are
    added."""
    by_uid = {item.sop_instance_uid: item for item in batch}
    if not by_uid:
        return []
    meta = TransferInstance._meta
    connection = connections[router.db_for_write(TransferInstance)]
    quote = connection.ops.quote_name
    fields: list[Any] = [
        meta.get_field(name)
        for name in (
            "transfer",
            "sop_instance_uid",
            "study_instance_uid",
            "series_instance_uid",
            "state",
            "size",
            "sha256",
            "attempts",
            "last_error",
            "updated_at",
        )
    ]
    now = timezone.now()
    params: list[Any] = []
    for uid, item in by_uid.items():
        # The retrieval hashed most files as it wrote them; read back only the others.
        values: list[Any] = [transfer.pk, uid, item.study_instance_uid, item.series_instance_uid]
        values += [InstanceState.RETRIEVED, item.size, item.sha256 or sha256_of(item.path), 0, "", now]
        params += [field.get_db_prep_save(value, connection) for field, value in zip(fields, values, strict=True)]
    table, columns = quote(meta.db_table), [quote(field.column) for field in fields]
    state, sop = quote("state"), quote("sop_instance_uid")
    assignments = ", ".join(
        f"{quote(name)} = EXCLUDED.{quote(name)}" for name in ("state", "size", "sha256", "updated_at")
    )
    rows = ", ".join(["(" + ", ".join(["%s"] * len(fields)) + ")"] * len(by_uid))
    insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {rows}"  # noqa: S608 - names from the model
    conflict = f"ON CONFLICT ({quote('transfer_id')}, {sop}) DO UPDATE SET {assignments}"
    sql = f"{insert} {conflict} WHERE {table}.{state} NOT IN (%s, %s, %s) RETURNING {sop}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, InstanceState.STORED, InstanceState.FAILED, InstanceState.ALREADY_PRESENT])
        to_send = {uid for (uid,) in cursor.fetchall()}
    return [item for uid, item in by_uid.items() if uid in to_send]


def mark_stored(
    transfer: Transfer, sent: Sequence[RetrievedInstance], results: Sequence[StoreResult]
) -> dict[str, list[str]]:
    """Record a batch's outcome, the destination's own answer per instance (a duplicate answer counts as
    already present); returns the instances delivered, by study."""
    outcome = {r.sop_instance_uid or item.sop_instance_uid: r for item, r in zip(sent, results, strict=True)}
    study_of = {item.sop_instance_uid: item.study_instance_uid for item in sent}
    stored: dict[str, list[str]] = {}
    if all(result.ok and not result.already_present for result in outcome.values()):  # the usual case
        stored_uids = transfer.instances.filter(sop_instance_uid__in=outcome).update(
            state=InstanceState.STORED, last_error="", attempts=F("attempts") + 1, updated_at=timezone.now()
        )
        if stored_uids == len(outcome):
            for uid in outcome:
                stored.setdefault(study_of.get(uid, ""), []).append(uid)
            return stored
    with transaction.atomic():
        rows = list(transfer.instances.select_for_update().filter(sop_instance_uid__in=outcome))
        for row in rows:
            result = outcome[row.sop_instance_uid]
            row.attempts += 1
            if result.ok:
                row.state = InstanceState.ALREADY_PRESENT if result.already_present else InstanceState.STORED
                row.last_error = ""
                stored.setdefault(study_of.get(row.sop_instance_uid, row.study_instance_uid), []).append(
                    row.sop_instance_uid
                )
            elif result.permanent or row.attempts >= MAX_INSTANCE_ATTEMPTS:
                row.state, row.last_error = InstanceState.FAILED, result.message or "refused by the destination"
            else:  # a refusal the destination may lift (out of resources): send it again on the next pass
                row.state, row.last_error = InstanceState.PENDING, result.message
        update_each(rows, ["state", "attempts", "last_error"])
    return stored


def give_up_or_retry_undelivered(transfer: Transfer) -> None:
    """Instances the source did not deliver (or the destination refused for now) get another pass later:
    raises TransientTransferError while some wait; after MAX_INSTANCE_ATTEMPTS passes they are failed."""
    left = transfer.instances.filter(state__in=MOVING)
    if not left.exists():
        return
    with transaction.atomic():
        rows = list(left.select_for_update())
        for row in rows:
            row.attempts += 1
            if row.attempts >= MAX_INSTANCE_ATTEMPTS:
                row.state = InstanceState.FAILED
                row.last_error = row.last_error or "the source gateway did not deliver it"
            else:
                row.state = InstanceState.PENDING
        TransferInstance.objects.bulk_update(rows, ["state", "attempts", "last_error", "updated_at"])
    waiting = sum(1 for row in rows if row.state == InstanceState.PENDING)
    if waiting:
        raise TransientTransferError(f"{waiting} instances have not arrived yet; trying again.")


def delivered_by_series(transfer: Transfer, study_uid: str) -> dict[str, int]:
    """How many instances of each series of the study the destination has said it holds."""
    rows = transfer.instances.filter(state__in=DELIVERED, study_instance_uid=study_uid)
    counts: dict[str, int] = {}
    for series_uid in rows.values_list("series_instance_uid", flat=True):
        counts[series_uid] = counts.get(series_uid, 0) + 1
    return counts


def delivered_uids(transfer: Transfer, study_uid: str, series_uid: str | None = None) -> set[str]:
    rows = transfer.instances.filter(state__in=DELIVERED, study_instance_uid=study_uid)
    if series_uid is not None:
        rows = rows.filter(series_instance_uid=series_uid)
    return set(rows.values_list("sop_instance_uid", flat=True))


def fail_unlisted(transfer: Transfer, uids: Iterable[str], destination_name: str) -> None:
    """Instances the destination said it holds but its index does not list: failed (never reported as
    sent)."""
    transfer.instances.filter(state__in=DELIVERED, sop_instance_uid__in=list(uids)).update(
        state=InstanceState.FAILED,
        last_error=f"{destination_name} accepted it but does not list it in its index",
    )


def fail_refused(transfer: Transfer, reasons: dict[str, str]) -> tuple[int, list[str]]:
    """Instances refused on arrival from the source: failed with the reason unless stored or failed
    already. Returns how many it failed, and the UIDs already stored (a second, different copy)."""
    with transaction.atomic():
        rows = list(transfer.instances.select_for_update().filter(sop_instance_uid__in=reasons))
        already_stored = [row.sop_instance_uid for row in rows if row.state == InstanceState.STORED]
        failed = [row for row in rows if row.state not in (*DELIVERED, InstanceState.FAILED)]
        for row in failed:
            row.state = InstanceState.FAILED
            row.last_error = f"refused on arrival from the source, not sent: {reasons[row.sop_instance_uid]}"
        TransferInstance.objects.bulk_update(failed, ["state", "last_error", "updated_at"])
    return len(failed), already_stored


def waiting_uids(transfer: Transfer, study_uid: str) -> Any:
    """A subquery of the study's instances neither stored nor failed yet."""
    waiting = transfer.instances.filter(study_instance_uid=study_uid).exclude(
        state__in=(*DELIVERED, InstanceState.FAILED)
    )
    return waiting.values("sop_instance_uid")


def record_sent_bytes(transfer: Transfer, paths: dict[str, Any]) -> None:
    """A stage changed these files (`{sop_instance_uid: path}`) before they are stored: the ledger holds the
    hash and size of the bytes actually sent, not those the source gave."""
    if not paths:
        return
    hashes = {uid: (sha256_of(path), path.stat().st_size) for uid, path in paths.items()}
    with transaction.atomic():
        rows = list(transfer.instances.select_for_update().filter(sop_instance_uid__in=hashes))
        for row in rows:
            row.sha256, row.size = hashes[row.sop_instance_uid]
        update_each(rows, ["sha256", "size"])
