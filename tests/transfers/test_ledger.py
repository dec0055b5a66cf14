"""The engine's ledger functions on their own (the SQL of transfers/engine/ledger.py): what each writes,
and what it refuses to overwrite."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomkit import Instance, RetrievedInstance, StoreResult
from transfers import services
from transfers.engine import ledger
from transfers.engine.errors import TransientTransferError
from transfers.models import InstanceState, Transfer, TransferInstance

from .conftest import STUDY

pytestmark = pytest.mark.django_db
SERIES = f"{STUDY}.1"


@pytest.fixture
def transfer(alice, trust_a, trust_b, cget_gateway_a, cget_gateway_b, agreement) -> Transfer:
    return services.transfer_create(
        source=trust_a,
        destination=trust_b,
        study_instance_uids=[STUDY],
        priority="routine",
        reason="Second opinion",
        requested_by=alice,
    )


def retrieved(tmp_path: Path, n: int, *, sha256: str = "") -> RetrievedInstance:
    path = tmp_path / f"{n}.dcm"
    path.write_bytes(b"DICM" * (n + 1))
    return RetrievedInstance(
        path=path,
        sop_instance_uid=f"{SERIES}.{n}",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        study_instance_uid=STUDY,
        series_instance_uid=SERIES,
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        size=path.stat().st_size,
        sha256=sha256,
    )


def states(transfer: Transfer) -> dict[str, str]:
    return dict(transfer.instances.values_list("sop_instance_uid", "state"))


def test_the_plan_adds_rows_once(transfer):
    planned = [Instance(STUDY, SERIES, f"{SERIES}.{n}") for n in range(3)]
    ledger.add_planned(transfer, STUDY, planned)
    ledger.add_planned(transfer, STUDY, planned)

    assert states(transfer) == {f"{SERIES}.{n}": InstanceState.PENDING for n in range(3)}
    assert ledger.study_todo(transfer, STUDY) == (3, [f"{SERIES}.{n}" for n in range(3)])


def test_retrieved_updates_planned_rows_adds_unplanned_ones_and_never_resends_what_is_stored(transfer, tmp_path):
    ledger.add_planned(transfer, STUDY, [Instance(STUDY, SERIES, f"{SERIES}.{n}") for n in range(3)])
    transfer.instances.filter(sop_instance_uid=f"{SERIES}.0").update(state=InstanceState.STORED)
    transfer.instances.filter(sop_instance_uid=f"{SERIES}.1").update(state=InstanceState.FAILED)
    batch = [retrieved(tmp_path, n, sha256="ab" * 32 if n == 2 else "") for n in range(4)]

    to_send = ledger.mark_retrieved(transfer, batch)

    assert [item.sop_instance_uid for item in to_send] == [f"{SERIES}.2", f"{SERIES}.3"]
    assert states(transfer) == {
        f"{SERIES}.0": InstanceState.STORED,
        f"{SERIES}.1": InstanceState.FAILED,
        f"{SERIES}.2": InstanceState.RETRIEVED,
        f"{SERIES}.3": InstanceState.RETRIEVED,  # the source held more than its index listed
    }
    row2, row3 = (transfer.instances.get(sop_instance_uid=f"{SERIES}.{n}") for n in (2, 3))
    assert row2.sha256 == "ab" * 32 and row2.size == batch[2].size  # the retrieval's own hash is kept
    assert len(row3.sha256) == 64 and row3.sha256 != "ab" * 32  # hashed from the file


def test_stored_results_are_recorded_per_instance(transfer, tmp_path):
    batch = [retrieved(tmp_path, n) for n in range(4)]
    ledger.mark_retrieved(transfer, batch)
    TransferInstance.objects.filter(sop_instance_uid=f"{SERIES}.3").update(attempts=ledger.MAX_INSTANCE_ATTEMPTS - 1)
    results = [
        StoreResult(batch[0].path, batch[0].sop_instance_uid, ok=True),
        StoreResult(batch[1].path, batch[1].sop_instance_uid, ok=False, message="bad SOP class", permanent=True),
        StoreResult(batch[2].path, batch[2].sop_instance_uid, ok=False, message="out of resources"),
        StoreResult(batch[3].path, batch[3].sop_instance_uid, ok=False, message="out of resources"),
    ]

    assert ledger.mark_stored(transfer, batch, results) == {STUDY: [f"{SERIES}.0"]}

    rows = {r.sop_instance_uid: r for r in transfer.instances.all()}
    assert (rows[f"{SERIES}.0"].state, rows[f"{SERIES}.0"].attempts) == (InstanceState.STORED, 1)
    assert (rows[f"{SERIES}.1"].state, rows[f"{SERIES}.1"].last_error) == (InstanceState.FAILED, "bad SOP class")
    assert (rows[f"{SERIES}.2"].state, rows[f"{SERIES}.2"].last_error) == (InstanceState.PENDING, "out of resources")
    assert rows[f"{SERIES}.3"].state == InstanceState.FAILED  # its last attempt


def test_a_batch_stored_whole_is_one_update(transfer, tmp_path, django_assert_max_num_queries):
    batch = [retrieved(tmp_path, n) for n in range(8)]
    ledger.mark_retrieved(transfer, batch)
    results = [StoreResult(item.path, item.sop_instance_uid, ok=True) for item in batch]

    with django_assert_max_num_queries(1):
        stored = ledger.mark_stored(transfer, batch, results)

    assert sorted(stored[STUDY]) == sorted(item.sop_instance_uid for item in batch)
    assert set(states(transfer).values()) == {InstanceState.STORED}


def test_update_each_writes_only_the_named_fields(transfer, tmp_path):
    ledger.mark_retrieved(transfer, [retrieved(tmp_path, n) for n in range(2)])
    rows = list(transfer.instances.order_by("sop_instance_uid"))
    before = rows[0].updated_at
    rows[0].state, rows[0].last_error, rows[0].size = InstanceState.FAILED, "refused", 1
    rows[1].state = InstanceState.STORED

    ledger.update_each(rows, ["state", "last_error"])

    first, second = transfer.instances.order_by("sop_instance_uid")
    assert (first.state, first.last_error) == (InstanceState.FAILED, "refused")
    assert first.size != 1 and first.updated_at > before
    assert second.state == InstanceState.STORED


def test_undelivered_instances_get_more_passes_then_fail(transfer):
    ledger.add_planned(transfer, STUDY, [Instance(STUDY, SERIES, f"{SERIES}.0")])

    for _ in range(ledger.MAX_INSTANCE_ATTEMPTS - 1):
        with pytest.raises(TransientTransferError, match="1 instances have not arrived yet"):
            ledger.give_up_or_retry_undelivered(transfer)
    ledger.give_up_or_retry_undelivered(transfer)

    row = transfer.instances.get()
    assert (row.state, row.last_error) == (InstanceState.FAILED, "the source gateway did not deliver it")


def test_refusals_fail_what_is_still_moving_and_name_what_was_already_stored(transfer, tmp_path):
    ledger.mark_retrieved(transfer, [retrieved(tmp_path, n) for n in range(2)])
    transfer.instances.filter(sop_instance_uid=f"{SERIES}.0").update(state=InstanceState.STORED)
    reasons = {f"{SERIES}.0": "truncated", f"{SERIES}.1": "truncated"}

    assert ledger.fail_refused(transfer, reasons) == (1, [f"{SERIES}.0"])

    assert states(transfer) == {f"{SERIES}.0": InstanceState.STORED, f"{SERIES}.1": InstanceState.FAILED}
    assert "refused on arrival" in transfer.instances.get(sop_instance_uid=f"{SERIES}.1").last_error
