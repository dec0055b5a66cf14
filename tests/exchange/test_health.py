"""Gateway health: the Celery task, beat's schedule, POST gateways/{id}/echo/ and the "Echo now" button."""

from __future__ import annotations

import pytest
from django.conf import settings

from directory.models import Gateway
from exchange import tasks
from portal.celery import app
from tests.helpers import api_as, signed_in


def test_the_task_marks_a_live_pacs_up_with_its_latency(sim_gateway):
    assert tasks.echo_gateway(sim_gateway.pk) is True
    sim_gateway.refresh_from_db()
    assert sim_gateway.status == Gateway.Status.UP
    assert sim_gateway.latency_ms is not None and sim_gateway.latency_ms >= 0
    assert sim_gateway.last_checked is not None
    assert sim_gateway.last_error == ""


def test_the_task_marks_an_unreachable_port_down_with_a_readable_error(dead_gateway):
    assert tasks.echo_gateway(dead_gateway.pk) is False
    dead_gateway.refresh_from_db()
    assert dead_gateway.status == Gateway.Status.DOWN
    assert dead_gateway.latency_ms is None
    assert str(dead_gateway.port) in dead_gateway.last_error
    assert "Traceback" not in dead_gateway.last_error


def test_a_deleted_gateway_is_skipped(db):
    assert tasks.echo_gateway(999999) is None


def test_the_round_echoes_every_gateway(sim_gateway, dead_gateway):
    app.conf.task_always_eager = True
    try:
        assert tasks.echo_gateways() == 2
    finally:
        app.conf.task_always_eager = False
    statuses = dict(Gateway.objects.values_list("name", "status"))
    assert statuses == {"Main PACS": "up", "Old PACS": "down"}


def test_beat_runs_the_round_every_minute_by_default():
    entry = settings.CELERY_BEAT_SCHEDULE["exchange-echo-gateways"]
    assert (entry["task"], entry["schedule"]) == ("exchange.echo_gateways", 60.0)
    assert app.amqp.router.route({}, "exchange.echo_gateways")["queue"].name == "default"
    assert "exchange.echo_gateways" in app.tasks


@pytest.mark.interop
def test_a_dicomweb_only_gateway_is_pinged_with_qido_rs(orthanc_gateway):
    assert tasks.echo_gateway(orthanc_gateway.pk) is True
    orthanc_gateway.refresh_from_db()
    assert orthanc_gateway.status == Gateway.Status.UP


# --- POST /api/v1/gateways/{id}/echo/ ---------------------------------------------------------------


def test_the_imaging_manager_echoes_now(amir, sim_gateway):
    response = api_as(amir).post(f"/api/v1/gateways/{sim_gateway.pk}/echo/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"ok", "latency_ms", "error"}
    assert body["ok"] is True and body["error"] == "" and body["latency_ms"] >= 0
    sim_gateway.refresh_from_db()
    assert sim_gateway.status == Gateway.Status.UP


def test_echo_reports_an_unreachable_gateway(amir, dead_gateway):
    body = api_as(amir, token=True).post(f"/api/v1/gateways/{dead_gateway.pk}/echo/").json()
    assert body["ok"] is False and body["latency_ms"] is None
    assert str(dead_gateway.port) in body["error"]
    dead_gateway.refresh_from_db()
    assert dead_gateway.status == Gateway.Status.DOWN


def test_the_regional_admin_echoes_any_gateway(rita, gateway_b):
    assert api_as(rita).post(f"/api/v1/gateways/{gateway_b.pk}/echo/").status_code == 200


def test_a_clinician_of_the_trust_may_not_echo(alice, sim_gateway):
    assert api_as(alice).post(f"/api/v1/gateways/{sim_gateway.pk}/echo/").status_code == 403


def test_another_trusts_manager_gets_404(bea, sim_gateway):
    assert api_as(bea).post(f"/api/v1/gateways/{sim_gateway.pk}/echo/").status_code == 404
    sim_gateway.refresh_from_db()
    assert sim_gateway.last_checked is None


# --- the "Echo now" button on the trust page ---------------------------------------------------------


def test_the_trust_page_offers_echo_now_to_its_imaging_manager(amir, alice, sim_gateway):
    assert "Echo now" in signed_in(amir).get("/trusts/RAA/").content.decode()
    assert "Echo now" not in signed_in(alice).get("/trusts/RAA/").content.decode()


def test_echo_now_reports_the_result_on_the_trust_page(amir, dead_gateway):
    response = signed_in(amir).post(f"/gateways/{dead_gateway.pk}/echo/", follow=True)
    assert response.redirect_chain[-1][0] == "/trusts/RAA/"
    page = response.content.decode()
    assert "did not answer" in page
    dead_gateway.refresh_from_db()
    assert dead_gateway.status == Gateway.Status.DOWN


def test_echo_now_is_refused_to_a_clinician_and_hidden_from_other_trusts(alice, bea, sim_gateway):
    assert signed_in(alice).post(f"/gateways/{sim_gateway.pk}/echo/").status_code == 403
    assert signed_in(bea).post(f"/gateways/{sim_gateway.pk}/echo/").status_code == 404
    assert signed_in(alice).get(f"/gateways/{sim_gateway.pk}/echo/").status_code == 405
