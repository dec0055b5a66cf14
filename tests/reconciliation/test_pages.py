"""The reconciliation queue page, its resolve form, and the trust's switches page."""

from __future__ import annotations

import pytest

from tests.helpers import signed_in

from .test_api import held  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db


def test_the_queue_page_lists_held_arrivals_with_the_reason(held, bea):  # noqa: F811
    page = signed_in(bea).get("/reconciliation/").content.decode()
    assert f'href="/reconciliation/{held.pk}/"' in page and "No local patient has this NHS number" in page


def _pacs_holds(monkeypatch, *ids: str) -> list[dict]:
    """The destination's PACS, as the MRN look-up sees it: a patient for each ID given."""
    from exchange.services import LocalPatient
    from reconciliation import views

    asked: list[dict] = []

    def local_patients(**kwargs):
        asked.append(kwargs)
        wanted = kwargs.get("patient_id")
        return [
            LocalPatient(pid, "RBB_MRN", {"Jones^Aoife"}, {"19800203"}, {"F"}, set(), [], "local ID")
            for pid in ids
            if pid == wanted
        ]

    monkeypatch.setattr(views, "local_patients", local_patients)
    return asked


def test_a_manager_resolves_from_the_page(held, bea, monkeypatch):  # noqa: F811
    from reconciliation import services

    monkeypatch.setattr(services, "_enqueue_forward", lambda item_id, queue: None)
    asked = _pacs_holds(monkeypatch, "RBB42")
    client = signed_in(bea)
    assert "Resolve and forward" in client.get(f"/reconciliation/{held.pk}/").content.decode()
    client.post(f"/reconciliation/{held.pk}/resolve/", {"patient_id": "RBB42", "issuer": "RBB_MRN"})
    held.refresh_from_db()
    assert (held.outcome, held.patient_id) == ("resolved", "RBB42")
    assert asked and asked[0]["patient_id"] == "RBB42"  # looked up at the PACS before it was accepted


def test_a_typed_mrn_the_pacs_does_not_hold_is_refused_and_files_nothing(held, bea, monkeypatch):  # noqa: F811
    """The MRN field accepted any value without checking it at the PACS (issue #19)."""
    _pacs_holds(monkeypatch, "RBB42")
    response = signed_in(bea).post(
        f"/reconciliation/{held.pk}/resolve/", {"patient_id": "RBB4", "issuer": "RBB_MRN"}, follow=True
    )
    held.refresh_from_db()
    assert held.outcome == "held" and not held.patient_id
    assert "holds no patient with the local ID RBB4" in response.content.decode()
    assert 'value="RBB4"' in response.content.decode()  # what was typed stays in the box


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
    # In words a clinician uses, with who acts next (it showed the raw status, and nobody's turn).
    assert "Arrived, being matched to a patient" in page
    assert "An imaging manager at Beta District General matches the images to a local patient" in page
    assert 'data-finished="true"' in page  # waiting on a person: the page stops polling
