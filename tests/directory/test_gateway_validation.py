"""Bad directory input gets a clear error in the form and the API, and nothing is saved."""

from __future__ import annotations

import pytest

from directory.models import Gateway, Trust
from tests.helpers import api_as, signed_in

pytestmark = pytest.mark.django_db

GOOD = {"name": "Edge node", "ae_title": "EDGE", "host": "127.0.0.1", "port": 104}


def post_gateway_form(user, trust, **overrides):
    return signed_in(user).post(
        f"/trusts/{trust.ods_code}/gateways/new/",
        {
            **GOOD,
            "retrieve_method": "c-move",
            "store_method": "c-store",
            "query_method": "c-find",
            "max_concurrency": 4,
            "verify_tls": "on",
            **overrides,
        },
    )


def post_gateway_api(user, trust, **overrides):
    body = {**GOOD, "trust": trust.ods_code, **overrides}
    return api_as(user).post("/api/v1/gateways/", body, format="json")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("ae_title", "A" * 17, "at most 16 characters"),
        ("ae_title", "BAD\\AE", "backslash"),
        ("port", 70000, "between 1 and 65535"),
        ("port", 0, "between 1 and 65535"),
    ],
)
def test_the_gateway_form_rejects_bad_values_and_saves_nothing(amir, trust_a, field, value, message):
    response = post_gateway_form(amir, trust_a, **{field: value})

    assert response.status_code == 400
    assert message in str(response.context["form"].errors[field])
    assert not Gateway.objects.exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("ae_title", "A" * 17, "16 characters"),
        ("ae_title", "BAD\\AE", "backslash"),
        ("port", 70000, "65535"),
    ],
)
def test_the_gateway_api_rejects_bad_values_and_saves_nothing(amir, trust_a, field, value, message):
    response = post_gateway_api(amir, trust_a, **{field: value})

    assert response.status_code == 400
    assert message in str(response.json()[field])
    assert not Gateway.objects.exists()


def test_a_duplicate_gateway_is_refused_by_form_and_api(amir, trust_a, gateway_a):
    duplicate = {"ae_title": gateway_a.ae_title, "host": gateway_a.host, "port": gateway_a.port}

    form_response = post_gateway_form(amir, trust_a, name="Another name", **duplicate)
    api_response = post_gateway_api(amir, trust_a, name="Third name", **duplicate)
    same_name = post_gateway_api(amir, trust_a, name=gateway_a.name)

    assert form_response.status_code == 400
    assert "already registered" in str(form_response.context["form"].errors)
    assert api_response.status_code == 400
    assert "already registered" in str(api_response.json())
    assert same_name.status_code == 400
    assert Gateway.objects.count() == 1


def test_a_dicomweb_method_without_a_url_is_explained(amir, trust_a):
    response = post_gateway_api(amir, trust_a, retrieve_method="wado-rs")

    assert response.status_code == 400
    assert "DICOMweb base URL" in str(response.json()["dicomweb_url"])
    assert not Gateway.objects.exists()


def test_a_good_gateway_is_saved_from_the_form(amir, trust_a):
    response = post_gateway_form(amir, trust_a)

    assert response.status_code == 302
    assert Gateway.objects.get().ae_title == "EDGE"


@pytest.mark.parametrize("code", ["rxh", "RX", "RXHABC", "RX-1", ""])
def test_an_invalid_ods_code_is_refused_and_no_trust_saved(rita, code):
    response = api_as(rita).post("/api/v1/trusts/", {"ods_code": code, "name": "Somewhere"}, format="json")

    assert response.status_code == 400
    assert "ods_code" in response.json()
    assert not Trust.objects.filter(name="Somewhere").exists()


def test_an_invalid_ods_code_is_refused_by_the_admin_form(rita):
    client = signed_in(rita)
    response = client.post(
        "/admin/directory/trust/add/",
        {
            "ods_code": "bad!",
            "name": "Somewhere",
            "kind": "trust",
            "gateways-TOTAL_FORMS": 0,
            "gateways-INITIAL_FORMS": 0,
        },
    )

    assert response.status_code == 200
    assert "3 to 5 upper-case letters" in response.content.decode()
    assert not Trust.objects.filter(name="Somewhere").exists()
