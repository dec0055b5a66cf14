"""transfers.completion, the one way a transfer ends: final state, one 110104 event, emails once committed."""

from __future__ import annotations

import pytest
from django.core import mail
from django.utils import timezone

from audit.models import AuditEvent
from transfers import completion, services
from transfers.models import InstanceState, Status, Transfer, TransferInstance

from .conftest import STUDY

pytestmark = pytest.mark.django_db


@pytest.fixture
def transfer(alice, bea, trust_a, trust_b, cget_gateway_a, cget_gateway_b, agreement) -> Transfer:
    transfer = services.transfer_create(
        source=trust_a,
        destination=trust_b,
        study_instance_uids=[STUDY],
        priority="urgent",
        reason="Head injury, neurosurgical opinion",
        requested_by=alice,
    )
    for n, state in enumerate([InstanceState.STORED, InstanceState.STORED, InstanceState.PENDING]):
        TransferInstance.objects.create(
            transfer=transfer, sop_instance_uid=f"{STUDY}.{n}", study_instance_uid=STUDY, state=state
        )
    return transfer


def transferred_events(transfer: Transfer) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(event_id="110104", detail__transfer=transfer.pk))


def test_a_transfer_ends_once_however_often_it_is_told_to(transfer, django_capture_on_commit_callbacks):
    transfer.instances.update(state=InstanceState.STORED)
    Transfer.objects.filter(pk=transfer.pk).update(status=Status.VERIFYING, lease_owner="w")

    with django_capture_on_commit_callbacks(execute=True):
        assert completion.transfer_complete(transfer.pk, owner="w") == Status.COMPLETED
        assert completion.transfer_complete(transfer.pk, owner="w") is None
        assert completion.transfer_fail(transfer.pk, "late task") is False

    assert Transfer.objects.get(pk=transfer.pk).status == Status.COMPLETED
    assert [e.outcome for e in transferred_events(transfer)] == [0]
    assert sorted(m.to[0] for m in mail.outbox) == ["alice@a.example", "bea@b.example"]


def test_reconciliation_cannot_end_a_transfer_while_instances_are_held(transfer):
    transfer.instances.filter(state=InstanceState.PENDING).update(state=InstanceState.HELD)
    Transfer.objects.filter(pk=transfer.pk).update(status=Status.AWAITING_RECONCILIATION)

    assert completion.transfer_complete(transfer.pk) is None

    transfer.instances.filter(state=InstanceState.HELD).update(state=InstanceState.STORED)
    assert completion.transfer_complete(transfer.pk) == Status.COMPLETED
    assert len(transferred_events(transfer)) == 1


def test_cancelling_a_transfer_nobody_runs_records_what_had_arrived(
    transfer, alice, django_capture_on_commit_callbacks
):
    # Two instances reached the destination in an earlier pass; the transfer now waits to try again.
    with django_capture_on_commit_callbacks(execute=True):
        services.transfer_cancel(transfer=transfer, user=alice)

    (event,) = transferred_events(transfer)
    assert event.outcome == 4 and event.detail["instances_stored"] == 2 and event.detail["reason"] == "cancelled"
    assert mail.outbox == []  # the requester cancelled it: no email about it


def test_cancelling_a_running_transfer_leaves_the_record_to_its_worker(transfer, alice):
    Transfer.objects.filter(pk=transfer.pk).update(status=Status.SENDING, lease_owner="w", heartbeat_at=timezone.now())

    services.transfer_cancel(transfer=transfer, user=alice)
    assert transferred_events(transfer) == []  # batches may still be on the wire

    completion.record_stopped(transfer.pk, "w")
    completion.record_stopped(transfer.pk, "another worker")
    (event,) = transferred_events(transfer)
    assert event.detail["reason"] == "cancelled while sending"
