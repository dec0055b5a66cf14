"""The reconciliation queue page, its resolve form, and the trust's switches page."""

from __future__ import annotations

import pytest

from tests.helpers import signed_in

from .test_api import held  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db


def test_the_queue_page_lists_held_arrivals_with_the_reason(held, bea):  # noqa: F811
    page = signed_in(bea).get("/reconciliation/").content.decode()
    assert f'href="/reconciliation/{held.pk}/"' in page and "No local patient has this NHS number" in page


def test_a_manager_resolves_from_the_page(held, bea, monkeypatch):  # noqa: F811
    from reconciliation import services

    monkeypatch.setattr(services, "_enqueue_forward", lambda item_id, queue: None)
    client = signed_in(bea)
    assert "Resolve and forward" in client.get(f"/reconciliation/{held.pk}/").content.decode()
    client.post(f"/reconciliation/{held.pk}/resolve/", {"patient_id": "RBB42", "issuer": "RBB_MRN"})
    held.refresh_from_db()
    assert (held.outcome, held.patient_id) == ("resolved", "RBB42")


def test_an_empty_patient_id_on_the_page_changes_nothing(held, bea):  # noqa: F811
    response = signed_in(bea).post(f"/reconciliation/{held.pk}/resolve/", {"patient_id": ""}, follow=True)
    assert "Required" in response.content.decode()
    held.refresh_from_db()
    assert held.outcome == "held"


def test_a_clinician_does_not_see_the_queue(held, bob):  # noqa: F811
    assert signed_in(bob).get(f"/reconciliation/{held.pk}/").status_code == 404
    assert f"/reconciliation/{held.pk}/" not in signed_in(bob).get("/reconciliation/").content.decode()


def test_a_manager_turns_a_switch_off_on_the_settings_page(bea, trust_b):
    client = signed_in(bea)
    assert client.get("/trusts/RBB/reconciliation/").status_code == 200
    client.post("/trusts/RBB/reconciliation/", {"reconcile_patient_id": "on", "prefix_study_description": "on"})
    trust_b.refresh_from_db()
    assert trust_b.reconcile_patient_id and trust_b.prefix_study_description and not trust_b.prefix_accession


def test_nobody_else_changes_the_switches(bob, bea, trust_a, trust_b):
    assert signed_in(bob).post("/trusts/RBB/reconciliation/", {}).status_code == 403
    assert signed_in(bea).post("/trusts/RAA/reconciliation/", {}).status_code == 403
    trust_b.refresh_from_db()
    trust_a.refresh_from_db()
    assert trust_b.reconcile_patient_id and trust_a.reconcile_patient_id


def test_a_waiting_transfer_says_so_on_its_page(held, bea):  # noqa: F811
    page = signed_in(bea).get(f"/transfers/{held.transfer_id}/").content.decode()
    assert "Awaiting reconciliation" in page
