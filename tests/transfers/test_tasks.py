"""The Celery tasks decide about retries; the sweeper hands silent transfers back to a worker."""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery.exceptions import Retry
from django.utils import timezone

from audit.models import AuditEvent
from dicomkit import GatewayError
from transfers import engine, services, tasks
from transfers.models import Status, Transfer

from .conftest import STUDY

pytestmark = pytest.mark.django_db


@pytest.fixture
def transfer(alice, agreement, cget_gateway_a, gateway_b, trust_a, trust_b) -> Transfer:
    return services.transfer_create(
        source=trust_a,
        destination=trust_b,
        study_instance_uids=[STUDY],
        priority="routine",
        reason="Follow-up at the tertiary centre",
        requested_by=alice,
    )


def run_task(transfer_id: int):
    return tasks.run_transfer.apply((transfer_id,), throw=True)


def test_a_permanent_gateway_error_fails_the_transfer_with_its_message(transfer, monkeypatch):
    def refuse(transfer_id, *, owner, **_):
        raise GatewayError("ALPHA_EDGE rejected the association: called AE title not recognised", permanent=True)

    monkeypatch.setattr(engine, "run", refuse)
    run_task(transfer.pk)

    transfer.refresh_from_db()
    assert transfer.status == Status.FAILED
    assert transfer.errors[-1]["error"].startswith("ALPHA_EDGE rejected the association")
    event = AuditEvent.objects.get(event_id="110104")
    assert event.outcome == 8 and event.detail["reason"].startswith("ALPHA_EDGE")


def test_a_transient_gateway_error_is_retried_with_backoff(transfer, monkeypatch, settings):
    settings.GATEWAY_RETRY_BASE_DELAY = 10
    monkeypatch.setattr(engine, "run", lambda *_, **__: (_ for _ in ()).throw(GatewayError("timed out")))

    with pytest.raises(Retry) as retried:
        run_task(transfer.pk)

    assert 5 <= retried.value.when <= 10
    transfer.refresh_from_db()
    assert transfer.status == Status.QUEUED and transfer.transient_failures == 1


def test_a_transient_error_past_the_retry_window_fails_readably(transfer, monkeypatch, settings):
    settings.GATEWAY_RETRY_WINDOW = 0
    monkeypatch.setattr(engine, "run", lambda *_, **__: (_ for _ in ()).throw(GatewayError("timed out")))

    run_task(transfer.pk)

    transfer.refresh_from_db()
    assert transfer.status == Status.FAILED
    assert "Gave up after 1 tries" in transfer.errors[-1]["error"] and "timed out" in transfer.errors[-1]["error"]


def test_a_bug_in_the_engine_fails_the_transfer_instead_of_leaving_it_running(transfer, monkeypatch):
    monkeypatch.setattr(engine, "run", lambda transfer_id, *, owner, **_: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        run_task(transfer.pk)
    transfer.refresh_from_db()
    assert transfer.status == Status.FAILED
    assert "ZeroDivisionError" in transfer.errors[-1]["error"]


def test_the_sweeper_requeues_only_transfers_whose_worker_went_silent(transfer, monkeypatch, settings):
    settings.TRANSFER_LEASE_SECONDS = 60
    requeued: list[tuple[int, str]] = []
    monkeypatch.setattr(tasks, "enqueue", lambda transfer_id, queue: requeued.append((transfer_id, queue)))
    now = timezone.now()
    Transfer.objects.filter(pk=transfer.pk).update(status=Status.SENDING, heartbeat_at=now - timedelta(seconds=30))
    assert tasks.sweep_stalled() == 0

    Transfer.objects.filter(pk=transfer.pk).update(heartbeat_at=now - timedelta(seconds=121))
    assert tasks.sweep_stalled() == 1
    assert requeued == [(transfer.pk, "routine")]


def test_the_sweeper_leaves_finished_transfers_alone(transfer, monkeypatch):
    monkeypatch.setattr(tasks, "enqueue", lambda transfer_id, queue: pytest.fail("requeued a finished transfer"))
    Transfer.objects.filter(pk=transfer.pk).update(
        status=Status.COMPLETED, heartbeat_at=timezone.now() - timedelta(days=1)
    )
    assert tasks.sweep_stalled() == 0
