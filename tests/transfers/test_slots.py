"""Per-gateway concurrency limits shared by every worker: slots in the database, taken all or none,
renewed with the heartbeat, freed at the end or when a dead worker's lease lapses."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from directory.models import GatewaySlot
from transfers import engine, services, slots
from transfers.models import Status, Transfer
from transfers.tasks import sweep_stalled

from .conftest import STUDY

pytestmark = pytest.mark.django_db


@pytest.fixture
def transfer(alice, trust_a, trust_b, cget_gateway_a, cget_gateway_b, agreement) -> Transfer:
    return services.transfer_create(
        source=trust_a,
        destination=trust_b,
        study_instance_uids=[STUDY],
        priority="routine",
        reason="Follow-up",
        requested_by=alice,
    )


def test_a_gateway_gives_out_no_more_slots_than_its_limit(cget_gateway_b):
    cget_gateway_b.max_concurrency = 2
    cget_gateway_b.save()

    assert slots.acquire([cget_gateway_b.pk], "w1")
    assert slots.acquire([cget_gateway_b.pk], "w2")
    assert not slots.acquire([cget_gateway_b.pk], "w3")
    assert slots.in_use(cget_gateway_b.pk) == 2

    slots.release("w1")
    assert slots.acquire([cget_gateway_b.pk], "w3")


def test_asking_again_for_a_slot_already_held_takes_no_second_one(cget_gateway_b):
    cget_gateway_b.max_concurrency = 2
    cget_gateway_b.save()
    assert slots.acquire([cget_gateway_b.pk], "w1") and slots.acquire([cget_gateway_b.pk], "w1")
    assert slots.in_use(cget_gateway_b.pk) == 1


def test_slots_are_taken_on_both_gateways_or_on_neither(cget_gateway_a, cget_gateway_b):
    cget_gateway_b.max_concurrency = 1
    cget_gateway_b.save()
    assert slots.acquire([cget_gateway_b.pk], "busy")

    assert not slots.acquire([cget_gateway_a.pk, cget_gateway_b.pk], "w1")
    assert slots.in_use(cget_gateway_a.pk) == 0  # it did not keep A's slot while B was full


def test_a_dead_workers_slot_frees_itself_when_its_lease_lapses(cget_gateway_b, settings):
    cget_gateway_b.max_concurrency = 1
    cget_gateway_b.save()
    assert slots.acquire([cget_gateway_b.pk], "dead")
    assert not slots.acquire([cget_gateway_b.pk], "w2")

    GatewaySlot.objects.filter(holder="dead").update(expires_at=timezone.now() - timedelta(seconds=1))

    assert slots.acquire([cget_gateway_b.pk], "w2")
    assert GatewaySlot.objects.get(gateway=cget_gateway_b).holder == "w2"


def test_renewing_moves_the_expiry_on(cget_gateway_b, settings):
    settings.TRANSFER_LEASE_SECONDS = 60
    assert slots.acquire([cget_gateway_b.pk], "w1")
    GatewaySlot.objects.filter(holder="w1").update(expires_at=timezone.now() + timedelta(seconds=1))
    slots.renew("w1")
    assert GatewaySlot.objects.get(holder="w1").expires_at > timezone.now() + timedelta(seconds=50)


def test_lowering_the_limit_applies_to_the_next_claim(cget_gateway_b):
    cget_gateway_b.max_concurrency = 3
    cget_gateway_b.save()
    assert slots.acquire([cget_gateway_b.pk], "w1")
    cget_gateway_b.max_concurrency = 1
    cget_gateway_b.save()
    assert not slots.acquire([cget_gateway_b.pk], "w2")


def test_the_engine_waits_for_a_slot_without_touching_the_transfer(transfer, cget_gateway_b):
    cget_gateway_b.max_concurrency = 1
    cget_gateway_b.save()
    assert slots.acquire([cget_gateway_b.pk], "another transfer")

    with pytest.raises(engine.NoSlot):
        engine.run(transfer.pk, owner="w1")

    transfer.refresh_from_db()
    assert (transfer.status, transfer.attempts, transfer.transient_failures) == (Status.QUEUED, 0, 0)
    assert transfer.first_transient_error_at is None and transfer.lease_owner == ""
    assert not GatewaySlot.objects.filter(holder="w1").exists()


def test_waiting_keeps_a_queued_transfer_from_looking_stalled(transfer, settings):
    engine.note_waiting(transfer.pk)
    assert Transfer.objects.get(pk=transfer.pk).heartbeat_at is not None

    # A live worker's lease is left alone: its own heartbeats speak for it.
    fresh = timezone.now() - timedelta(seconds=1)
    Transfer.objects.filter(pk=transfer.pk).update(lease_owner="live worker", heartbeat_at=fresh)
    engine.note_waiting(transfer.pk)
    assert Transfer.objects.filter(pk=transfer.pk, lease_owner="live worker", heartbeat_at=fresh).exists()

    # A dead worker's lease (silent for longer than a lease) is dropped, not made to look fresh; the
    # waiting task now speaks for the transfer, so the sweeper does not queue it again.
    silent = timezone.now() - timedelta(seconds=settings.TRANSFER_LEASE_SECONDS * 3)
    Transfer.objects.filter(pk=transfer.pk).update(lease_owner="dead worker", heartbeat_at=silent)
    engine.note_waiting(transfer.pk)
    waiting = Transfer.objects.get(pk=transfer.pk)
    assert waiting.lease_owner == "" and waiting.heartbeat_at > silent
    assert sweep_stalled() == 0


def test_a_finished_transfer_needs_no_slot(transfer, cget_gateway_b):
    cget_gateway_b.max_concurrency = 1
    cget_gateway_b.save()
    assert slots.acquire([cget_gateway_b.pk], "another transfer")
    Transfer.objects.filter(pk=transfer.pk).update(status=Status.COMPLETED)
    assert engine.run(transfer.pk, owner="w1") == "already finished"


def test_the_task_waits_briefly_for_a_full_gateway_and_never_gives_up_on_it(transfer, cget_gateway_b, settings):
    from celery.exceptions import Retry

    from transfers import tasks

    settings.GATEWAY_RETRY_WINDOW = 0  # even a closed retry window does not fail a transfer that waits
    cget_gateway_b.max_concurrency = 1
    cget_gateway_b.save()
    assert slots.acquire([cget_gateway_b.pk], "another transfer")

    for _ in range(3):
        with pytest.raises(Retry) as retried:
            tasks.run_transfer.apply((transfer.pk,), throw=True)
        assert 1 <= retried.value.when <= 2

    transfer.refresh_from_db()
    assert (transfer.status, transfer.transient_failures, transfer.errors) == (Status.QUEUED, 0, [])
    assert transfer.heartbeat_at is not None  # the sweeper sees it is being looked after
