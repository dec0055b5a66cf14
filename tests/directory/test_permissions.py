"""Nobody acts on objects of a trust they don't belong to (404), and IG officers change nothing (403)."""

from __future__ import annotations

import pytest

from directory.models import Gateway, SharingAgreement, Trust
from tests.helpers import api_as, signed_in

pytestmark = pytest.mark.django_db


def test_a_clinician_of_trust_a_gets_404_for_trust_b_gateway_edit(alice, gateway_b):
    assert signed_in(alice).get(f"/gateways/{gateway_b.pk}/edit/").status_code == 404
    assert signed_in(alice).post(f"/gateways/{gateway_b.pk}/edit/", {"name": "x"}).status_code == 404
    assert api_as(alice).get(f"/api/v1/gateways/{gateway_b.pk}/").status_code == 404
    assert api_as(alice).patch(f"/api/v1/gateways/{gateway_b.pk}/", {"port": 1}, format="json").status_code == 404
    assert Gateway.objects.get(pk=gateway_b.pk).port == 4243


def test_an_imaging_manager_of_trust_a_cannot_add_gateways_to_trust_b(amir, trust_b):
    assert signed_in(amir).get(f"/trusts/{trust_b.ods_code}/gateways/new/").status_code == 404
    response = api_as(amir).post(
        "/api/v1/gateways/", {"trust": "RBB", "name": "x", "ae_title": "X", "host": "h", "port": 1}, format="json"
    )
    assert response.status_code == 403
    assert not Gateway.objects.filter(trust=trust_b).exists()


def test_trust_b_gateways_are_not_listed_for_trust_a(alice, gateway_a, gateway_b):
    ids = [g["id"] for g in api_as(alice).get("/api/v1/gateways/").json()["results"]]
    assert ids == [gateway_a.pk]


def test_a_clinician_may_see_but_not_edit_their_own_trust_gateway(alice, gateway_a):
    assert signed_in(alice).get(f"/gateways/{gateway_a.pk}/edit/").status_code == 403
    assert api_as(alice).get(f"/api/v1/gateways/{gateway_a.pk}/").status_code == 200


def test_the_imaging_manager_edits_their_gateway(amir, gateway_a):
    response = api_as(amir).patch(f"/api/v1/gateways/{gateway_a.pk}/", {"max_concurrency": 8}, format="json")

    assert response.status_code == 200
    assert Gateway.objects.get(pk=gateway_a.pk).max_concurrency == 8


def test_ig_officers_cannot_change_anything(ada, gateway_a, trust_a, trust_b, agreement, alice):
    api = api_as(ada)
    refused = [
        api.patch(f"/api/v1/gateways/{gateway_a.pk}/", {"port": 11}, format="json"),
        api.post(
            "/api/v1/gateways/", {"trust": "RAA", "name": "n", "ae_title": "N", "host": "h", "port": 2}, format="json"
        ),
        api.post("/api/v1/trusts/", {"ods_code": "RCC", "name": "New"}, format="json"),
        api.patch(f"/api/v1/trusts/{trust_a.ods_code}/", {"name": "Renamed"}, format="json"),
        api.patch(f"/api/v1/agreements/{agreement.pk}/", {"active": False}, format="json"),
        api.post("/api/v1/users/", {"email": "new@a.example"}, format="json"),
        api.post("/api/v1/memberships/", {"user": alice.email, "trust": "RAA", "role": "clinician"}, format="json"),
    ]
    ui = signed_in(ada)
    refused.append(ui.post(f"/gateways/{gateway_a.pk}/edit/", {"name": "x"}))
    refused.append(ui.get("/admin/directory/gateway/"))

    assert [r.status_code for r in refused] == [403] * 7 + [403, 302]
    assert Gateway.objects.get(pk=gateway_a.pk).port == 4242
    assert SharingAgreement.objects.get().active


def test_an_imaging_manager_grants_roles_only_at_their_trust_and_never_regional_admin(amir, alice, bob):
    api = api_as(amir)

    ok = api.post("/api/v1/memberships/", {"user": alice.email, "trust": "RAA", "role": "ig_officer"}, format="json")
    other_trust = api.post(
        "/api/v1/memberships/", {"user": bob.email, "trust": "RBB", "role": "clinician"}, format="json"
    )
    escalate = api.post(
        "/api/v1/memberships/", {"user": alice.email, "trust": "RAA", "role": "regional_admin"}, format="json"
    )

    assert ok.status_code == 201
    assert other_trust.status_code == 403
    assert escalate.status_code == 403


def test_agreements_are_listed_only_to_members_of_either_trust(alice, bob, agreement, trust_a):
    from directory.models import Trust

    outsider_trust = Trust.objects.create(ods_code="RCC", name="Gamma")
    from tests.helpers import grant, make_user

    carol = grant(make_user("carol@c.example"), outsider_trust, "clinician")

    assert api_as(alice).get("/api/v1/agreements/").json()["count"] == 1
    assert api_as(bob).get("/api/v1/agreements/").json()["count"] == 1
    assert api_as(carol).get("/api/v1/agreements/").json()["count"] == 0
    assert api_as(carol).get(f"/api/v1/agreements/{agreement.pk}/").status_code == 404


def test_another_trusts_page_shows_its_gateways_health_but_not_their_addresses_or_agreements(
    alice, trust_b, gateway_b, agreement
):
    elsewhere = Trust.objects.create(ods_code="RCC", name="Gamma Hospitals")
    SharingAgreement.objects.create(trust_a=trust_b, trust_b=elsewhere)

    page = signed_in(alice).get("/trusts/RBB/").content.decode()

    assert gateway_b.name in page and gateway_b.get_status_display() in page
    assert gateway_b.ae_title not in page and f":{gateway_b.port}" not in page
    assert "Gamma Hospitals" not in page  # B's agreement with a third trust
    assert "Alpha Hospitals ⇄ Beta District General" in page  # her own trust's agreement with B


def test_a_member_sees_the_addresses_and_agreements_of_their_own_trust(bea, trust_b, gateway_b, agreement):
    page = signed_in(bea).get("/trusts/RBB/").content.decode()
    assert f"{gateway_b.ae_title} @ {gateway_b.host}:{gateway_b.port}" in page
