"""/healthz's added fields and the operations view's banner (portal/liveness.py). Real processes (a worker
answering the broadcast, a beat writing its heartbeat, the database going away) are in
tests/deployment/test_faults.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from portal import liveness
from portal.beat import HeartbeatScheduler
from portal.celery import app
from tests.helpers import signed_in

pytestmark = pytest.mark.django_db

PAGE = "/transfers/operations/"


def test_healthz_reports_each_queue_and_beat_besides_the_old_fields(settings):
    settings.BEAT_HEARTBEAT_SECONDS = 30
    liveness.record_beat_heartbeat(timezone.now() - timedelta(seconds=12))

    response = Client().get("/healthz")

    assert response.status_code == 200  # no worker, and still serving: warnings, not problems
    body = response.json()
    assert body["ok"] is True and body["problems"] == []
    assert {"urgent", "routine", "default"} <= set(body["queues"])
    assert all(q == {"consumers": 0} for q in body["queues"].values())  # no worker in this test
    assert "queue routine: no worker consumes it" in body["warnings"]
    assert 11 <= body["beat"]["age_seconds"] < 60 and body["beat"]["late"] is False
    assert body["beat"]["interval_seconds"] == 30


def test_every_routed_queue_is_listed(settings):
    """A task routed to a queue of its own (or nowhere: Celery's default queue) is reported too."""
    queues = liveness.routed_queues()

    assert {"urgent", "routine", "default"} <= set(queues)
    assert app.amqp.router.route({}, "audit.scan_alerts")["queue"].name in queues


def test_beat_that_never_ran_or_stopped_three_intervals_ago_is_late(settings):
    settings.BEAT_HEARTBEAT_SECONDS = 10
    assert Client().get("/healthz").json()["beat"] == {
        "last_run": None,
        "age_seconds": None,
        "interval_seconds": 10,
        "late": True,
    }
    liveness.record_beat_heartbeat(timezone.now() - timedelta(seconds=31))
    assert Client().get("/healthz").json()["beat"]["late"] is True
    liveness.record_beat_heartbeat(timezone.now() - timedelta(seconds=29))
    assert Client().get("/healthz").json()["beat"]["late"] is False


def test_the_scheduler_writes_its_heartbeat_on_each_tick_and_wakes_often_enough(settings, tmp_path):
    settings.BEAT_HEARTBEAT_SECONDS = 30
    scheduler = HeartbeatScheduler(app, schedule_filename=str(tmp_path / "schedule"), lazy=True)
    scheduler.setup_schedule()
    try:
        before = timezone.now()
        wait = scheduler.tick()
    finally:
        scheduler.close()

    assert liveness.beat_last_run() >= before - timedelta(seconds=1)
    assert 0 <= wait <= 10


def test_the_operations_view_shows_a_banner_for_idle_queues_and_a_late_beat(amir, settings):
    settings.BEAT_HEARTBEAT_SECONDS = 30
    liveness.record_beat_heartbeat(timezone.now() - timedelta(seconds=200))

    page = signed_in(amir).get(PAGE).content.decode()

    assert 'id="process-health"' in page
    assert "No worker consumes the <strong>routine</strong> queue" in page
    assert "The scheduler (beat) last ran 3\xa0minutes ago" in page


def test_a_broker_that_does_not_answer_makes_healthz_503_and_skips_the_workers(settings):
    original = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        body = Client().get("/healthz")
    finally:
        app.conf.broker_url = original

    assert body.status_code == 503
    assert body.json()["broker"] == "OperationalError" and body.json()["queues"] == {}
