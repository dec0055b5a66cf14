from __future__ import annotations

import pytest

from dicomkit import ConfigurationError, GatewayConfig, client_for


def test_it_normalises_method_names() -> None:
    cfg = GatewayConfig(ae_title="PACS", host="10.0.0.1", port=104, retrieve_method="C-MOVE")
    assert cfg.retrieve_method == "c-move"


def test_it_refuses_an_unknown_method() -> None:
    with pytest.raises(ConfigurationError, match="Unknown retrieve method 'c-teleport'"):
        GatewayConfig(ae_title="PACS", host="h", port=104, retrieve_method="c-teleport")


@pytest.mark.parametrize("title", ["", "A" * 17, "BAD\\AE", "TAB\tAE"])
def test_it_refuses_an_invalid_ae_title(title: str) -> None:
    with pytest.raises(ConfigurationError, match="AE title"):
        GatewayConfig(ae_title=title, host="h", port=104)


def test_it_needs_a_dicomweb_url_for_dicomweb_methods() -> None:
    with pytest.raises(ConfigurationError, match="DICOMweb"):
        GatewayConfig(query_method="qido-rs", retrieve_method="wado-rs", store_method="stow-rs")


def test_a_dicomweb_only_gateway_needs_no_ae_title() -> None:
    cfg = GatewayConfig(
        dicomweb_url="https://pacs.example.nhs.uk/dicom-web",
        query_method="qido-rs",
        retrieve_method="wado-rs",
        store_method="stow-rs",
    )
    assert not cfg.uses_dimse
    assert client_for(cfg, local_ae_title="PORTAL").dimse is None


def test_it_refuses_a_port_out_of_range() -> None:
    with pytest.raises(ConfigurationError, match="port 70000"):
        GatewayConfig(ae_title="PACS", host="h", port=70000)


def test_repr_never_shows_credentials() -> None:
    cfg = GatewayConfig(
        dicomweb_url="https://x/dicom-web",
        query_method="qido-rs",
        retrieve_method="wado-rs",
        store_method="stow-rs",
        username="u",
        password="hunter2",
    )
    assert "hunter2" not in repr(cfg)


def test_tls_verification_is_on_by_default() -> None:
    cfg = GatewayConfig(
        dicomweb_url="https://x/dicom-web", query_method="qido-rs", retrieve_method="wado-rs", store_method="stow-rs"
    )
    client = client_for(cfg, local_ae_title="PORTAL")
    assert cfg.verify_tls is True
    assert client.web is not None and client.web.session.verify is True


def test_bearer_token_goes_in_the_authorization_header() -> None:
    cfg = GatewayConfig(
        dicomweb_url="https://x/dicom-web",
        query_method="qido-rs",
        retrieve_method="wado-rs",
        store_method="stow-rs",
        bearer_token="abc",
    )
    client = client_for(cfg, local_ae_title="PORTAL")
    assert client.web is not None and client.web.session.headers["Authorization"] == "Bearer abc"
