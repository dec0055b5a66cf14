"""A regional administrator onboards a trust entirely through the API, with a token."""

from __future__ import annotations

import pytest
from django.core import mail

from accounts.models import Membership, User
from audit.models import AuditEvent
from directory.models import Gateway, SharingAgreement, Trust
from tests.helpers import api_as

pytestmark = pytest.mark.django_db


def test_a_regional_admin_onboards_a_trust_through_the_api(rita, trust_a, django_capture_on_commit_callbacks):
    api = api_as(rita, token=True)

    with django_capture_on_commit_callbacks(execute=True):
        trust = api.post(
            "/api/v1/trusts/",
            {"ods_code": "RCC", "name": "Gamma Hospitals", "kind": "trust", "patient_id_issuer": "RCC_MRN"},
            format="json",
        )
        gateway = api.post(
            "/api/v1/gateways/",
            {
                "trust": "RCC",
                "name": "Edge",
                "ae_title": "GAMMA_EDGE",
                "host": "127.0.0.1",
                "port": 11112,
                "dicomweb_url": "https://127.0.0.1:8443/dicom-web",
                "dicomweb_password": "s3cret",
                "retrieve_method": "wado-rs",
                "store_method": "stow-rs",
                "query_method": "qido-rs",
            },
            format="json",
        )
        agreement = api.post(
            "/api/v1/agreements/",
            {"trust_a": "RAA", "trust_b": "RCC", "a_to_b": True, "b_to_a": True, "auto_approve_urgent": True},
            format="json",
        )
        user = api.post(
            "/api/v1/users/", {"email": "manager@gamma.example", "full_name": "Gamma Manager"}, format="json"
        )
        role = api.post(
            "/api/v1/memberships/",
            {"user": "manager@gamma.example", "trust": "RCC", "role": "imaging_manager"},
            format="json",
        )

    assert [r.status_code for r in (trust, gateway, agreement, user, role)] == [201] * 5
    assert "dicomweb_password" not in gateway.json()
    assert Gateway.objects.get(trust__ods_code="RCC").dicomweb_password == "s3cret"
    assert SharingAgreement.objects.get(trust_b__ods_code="RCC").auto_approve_urgent
    assert Membership.objects.get(user__email="manager@gamma.example").role == "imaging_manager"
    assert mail.outbox[0].to == ["manager@gamma.example"]
    listed = api.get("/api/v1/trusts/RCC/").json()
    assert listed["gateways"][0]["name"] == "Edge"
    audited = set(AuditEvent.objects.filter(trust="RCC").values_list("event_type", flat=True))
    assert {"110128", "110129", "110136"} <= audited
    assert "s3cret" not in str(list(AuditEvent.objects.values_list("detail", flat=True)))


def test_a_clinician_cannot_onboard_anything(alice):
    api = api_as(alice, token=True)

    assert api.post("/api/v1/trusts/", {"ods_code": "RDD", "name": "Delta"}, format="json").status_code == 403
    assert api.post("/api/v1/users/", {"email": "x@y.example"}, format="json").status_code == 403
    assert not Trust.objects.filter(ods_code="RDD").exists()
    assert not User.objects.filter(email="x@y.example").exists()


def test_a_duplicate_user_email_is_a_clear_error(rita, alice):
    response = api_as(rita).post("/api/v1/users/", {"email": "ALICE@a.example"}, format="json")

    assert response.status_code == 400
    assert "already exists" in str(response.json()["email"])


def test_me_lists_memberships_and_lists_are_paginated(alice):
    me = api_as(alice).get("/api/v1/me/").json()
    trusts = api_as(alice).get("/api/v1/trusts/").json()

    assert me["is_regional_admin"] is False
    assert set(trusts) == {"count", "next", "previous", "results"}


def test_anonymous_callers_get_401_and_the_schema_documents_the_contract(client, alice):
    assert client.get("/api/v1/trusts/").status_code == 401
    assert client.get("/api/schema/").status_code == 401  # the map of the API is for signed-in callers
    client.force_login(alice)
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    body = schema.content.decode()
    for path in (
        "/api/v1/me/",
        "/api/v1/users/",
        "/api/v1/memberships/",
        "/api/v1/trusts/",
        "/api/v1/gateways/",
        "/api/v1/agreements/",
    ):
        assert path in body
    assert client.get("/api/docs/").status_code == 200
