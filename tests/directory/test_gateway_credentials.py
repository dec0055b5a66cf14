"""DICOMweb credentials are checked where they are entered; a request we cannot even build never blames
the PACS (issue #17 item 11)."""

from __future__ import annotations

import pytest

from dicomkit import ConfigurationError, GatewayConfig, StudyQuery
from dicomkit.dicomweb import DicomWebClient
from directory.models import Gateway
from tests.helpers import api_as, signed_in

pytestmark = pytest.mark.django_db

WEB = {"dicomweb_url": "http://127.0.0.1:9/dicom-web", "query_method": "qido-rs", "retrieve_method": "wado-rs"}


@pytest.fixture
def web_gateway(trust_a) -> Gateway:
    return Gateway.objects.create(trust=trust_a, name="Web PACS", **WEB, store_method="stow-rs")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("dicomweb_username", "userŁ", "printable ASCII"),
        ("dicomweb_username", "dr:who", "colon"),
        ("dicomweb_password", "pass\u2603word", "printable ASCII"),
        ("dicomweb_token", "abc def", "visible ASCII"),
        ("dicomweb_token", "tökén", "visible ASCII"),
    ],
)
def test_the_api_refuses_a_credential_that_cannot_go_in_an_http_header(amir, web_gateway, field, value, message):
    response = api_as(amir).patch(f"/api/v1/gateways/{web_gateway.pk}/", {field: value}, format="json")

    assert response.status_code == 400 and message in str(response.json()[field])
    assert getattr(Gateway.objects.get(pk=web_gateway.pk), field) == ""


def test_the_gateway_form_refuses_it_too(amir, web_gateway):
    form = {
        "name": "Web PACS",
        **WEB,
        "store_method": "stow-rs",
        "max_concurrency": 4,
        "dicomweb_username": "userŁ",
    }
    response = signed_in(amir).post(f"/gateways/{web_gateway.pk}/edit/", form)

    assert response.status_code in (200, 400) and "printable ASCII" in response.content.decode()
    assert Gateway.objects.get(pk=web_gateway.pk).dicomweb_username == ""


def test_ordinary_credentials_are_accepted(amir, web_gateway):
    body = {"dicomweb_username": "pacs-reader", "dicomweb_password": "s3cret, with spaces & signs!"}

    response = api_as(amir).patch(f"/api/v1/gateways/{web_gateway.pk}/", body, format="json")

    assert response.status_code == 200


def test_a_search_through_a_gateway_with_unusable_credentials_blames_its_settings_not_the_pacs(alice, web_gateway):
    Gateway.objects.filter(pk=web_gateway.pk).update(dicomweb_username="userŁ")  # saved before the check

    response = api_as(alice).get("/api/v1/trusts/RAA/studies/?patient_name=SMITH")

    detail = response.json()["detail"]
    assert response.status_code == 503
    assert "settings" in detail and "imaging manager" in detail
    assert "not DICOM JSON" not in detail and "PACS of" not in detail


def test_the_client_reports_a_request_it_cannot_build_as_a_configuration_error():
    config = GatewayConfig(
        dicomweb_url="http://127.0.0.1:9/dicom-web",
        query_method="qido-rs",
        retrieve_method="wado-rs",
        store_method="stow-rs",
        label="Web PACS",
    )
    client = DicomWebClient(config)
    client.session.auth = ("userŁ", "x")  # as a configuration built before the check would have it

    with pytest.raises(ConfigurationError, match="could not build its request"):
        client.find_studies(StudyQuery(patient_name="SMITH"))
