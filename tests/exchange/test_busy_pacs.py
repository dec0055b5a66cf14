"""Interactive work at a PACS whose connections are all in use (its max_concurrency held by a transfer):
a search, a study's page and an echo wait a few seconds for a slot, then say the PACS is busy (503,
Retry-After) without asking it; the health round leaves the gateway's health alone."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from directory import slots
from directory.access import Work
from directory.models import Gateway
from exchange import tasks
from tests.helpers import api_as, signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def busy(sim_gateway, alpha_pacs, settings) -> Gateway:
    """The PACS allows one association, and a transfer holds it."""
    settings.GATEWAY_INTERACTIVE_WAIT = 0.3
    Gateway.objects.filter(pk=sim_gateway.pk).update(max_concurrency=1)
    assert slots.acquire([sim_gateway.pk], "a transfer's run", work=Work.TRANSFER, subject="transfer 1")
    alpha_pacs.associations.reset()
    return sim_gateway


def test_a_search_at_a_busy_pacs_answers_503_with_retry_after_and_does_not_ask_it(alice, busy, alpha_pacs):
    response = api_as(alice).get("/api/v1/trusts/RAA/studies/", {"nhs_number": "9990000018"})

    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert "busy" in response.json()["detail"] and "Try again" in response.json()["detail"]
    assert alpha_pacs.associations.total == 0
    search = AuditEvent.objects.filter(event_id="110112").latest("seq")
    assert search.outcome == 8 and "busy" in search.detail["error"]  # every search is on the record


def test_the_search_page_says_the_pacs_is_busy(alice, busy, alpha_pacs):
    response = signed_in(alice).get("/trusts/RAA/studies/", {"nhs_number": "9990000018"})

    assert response.status_code == 503 and response["Retry-After"] == "30"
    assert "is busy" in response.content.decode()
    assert alpha_pacs.associations.total == 0


def test_a_studys_page_at_a_busy_pacs_answers_503(alice, busy, studies):
    response = api_as(alice).get(f"/api/v1/trusts/RAA/studies/{studies.ct_uid}/")
    assert response.status_code == 503 and response["Retry-After"] == "30"
    assert signed_in(alice).get(f"/trusts/RAA/studies/{studies.ct_uid}/").status_code == 503


def test_a_search_runs_once_the_transfer_has_let_go(alice, busy, alpha_pacs):
    slots.release("a transfer's run")
    response = api_as(alice).get("/api/v1/trusts/RAA/studies/", {"nhs_number": "9990000018"})
    assert response.status_code == 200 and len(response.json()["results"]) == 1
    assert alpha_pacs.associations.peak == 1
    assert slots.in_use(busy.pk) == 0  # the search's slot went back


def test_an_echo_at_a_busy_pacs_is_not_a_failure_of_the_pacs(amir, busy, alpha_pacs):
    response = api_as(amir).post(f"/api/v1/gateways/{busy.pk}/echo/")

    assert response.status_code == 503 and response["Retry-After"] == "30"
    assert "busy" in response.json()["detail"]
    busy.refresh_from_db()
    assert (busy.status, busy.last_checked) == (Gateway.Status.UNKNOWN, None)  # health unchanged
    assert alpha_pacs.associations.total == 0


def test_echo_now_on_the_trust_page_says_the_pacs_is_busy(amir, busy):
    response = signed_in(amir).post(f"/gateways/{busy.pk}/echo/", follow=True)
    assert "Not echoed" in response.content.decode() and "busy" in response.content.decode()
    busy.refresh_from_db()
    assert busy.status == Gateway.Status.UNKNOWN


def test_the_health_round_skips_a_busy_pacs_without_marking_it_down(busy, alpha_pacs):
    assert tasks.echo_gateway(busy.pk) is None
    busy.refresh_from_db()
    assert (busy.status, busy.last_checked) == (Gateway.Status.UNKNOWN, None)
    assert alpha_pacs.associations.total == 0
