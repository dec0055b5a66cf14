"""Gateways that are down, silent, slow or misconfigured: each fails in time with a readable error."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from pynetdicom import AE, evt
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from dicomkit import (
    AssociationRejected,
    GatewayConfig,
    GatewayError,
    GatewayTimeout,
    GatewayUnreachable,
    StudyQuery,
    client_for,
)
from dicomkit.association import new_ae, open_association

from .conftest import PORTAL_AE, orthanc_config
from .orthanc import OrthancProcess, free_port

pytestmark = pytest.mark.interop


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """Accepts TCP connections and never says a word, like a hung PACS."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_nothing_listening_fails_at_once_and_says_so() -> None:
    port = free_port()
    cfg = GatewayConfig(ae_title="RXHPACS", host="127.0.0.1", port=port, label="trust RXH PACS", connect_timeout=5)
    started = time.monotonic()
    with pytest.raises(GatewayUnreachable, match=f"trust RXH PACS .*127.0.0.1:{port}.* refused the connection") as e:
        client_for(cfg, local_ae_title=PORTAL_AE).find_studies(StudyQuery(patient_id="X"))
    assert time.monotonic() - started < 2 and not e.value.permanent


def test_a_silent_gateway_fails_within_its_timeout(silent_listener: int) -> None:
    cfg = GatewayConfig(ae_title="RXHPACS", host="127.0.0.1", port=silent_listener, acse_timeout=1.5)
    client = client_for(cfg, local_ae_title=PORTAL_AE)
    started = time.monotonic()
    result = client.echo()
    elapsed = time.monotonic() - started
    assert not result.ok and 1.2 < elapsed < 4
    assert f"gateway 127.0.0.1:{silent_listener}" in result.error
    assert "did not answer the association request within 1.5 s" in result.error


def test_an_unknown_host_is_named() -> None:
    cfg = GatewayConfig(ae_title="RXHPACS", host="pacs.invalid", port=104)
    with pytest.raises(GatewayUnreachable, match=re.escape("host 'pacs.invalid' could not be found")):
        client_for(cfg, local_ae_title=PORTAL_AE).find_series("1.2.3")


def test_a_wrong_called_ae_title_is_rejected_permanently(orthanc_b: OrthancProcess) -> None:
    cfg = orthanc_config(orthanc_b, ae_title="NOTORTHANC", label="trust RXH PACS")
    client = client_for(cfg, local_ae_title=PORTAL_AE)
    with pytest.raises(AssociationRejected) as caught:
        client.find_studies(StudyQuery(patient_id="X"))
    assert caught.value.permanent
    assert str(caught.value) == (
        "trust RXH PACS refused the association: called AE title not recognised (we called it 'NOTORTHANC')."
    )
    assert client.echo().error == str(caught.value)


def test_a_rejection_is_reported_even_when_the_peer_hangs_up_before_we_look(orthanc_b: OrthancProcess) -> None:
    # On a busy machine Orthanc can reject and close before pynetdicom checks the socket;
    # holding our side back after the request makes that order certain.
    cfg = orthanc_config(orthanc_b, ae_title="NOTORTHANC", label="trust RXH PACS")
    ae = new_ae(PORTAL_AE, cfg)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    with (
        pytest.raises(AssociationRejected, match="called AE title not recognised") as caught,
        open_association(ae, cfg, evt_handlers=[(evt.EVT_REQUESTED, lambda event: time.sleep(0.5))]),
    ):
        pass
    assert caught.value.permanent


def test_a_pacs_that_stops_answering_mid_query_times_out() -> None:
    def slow_find(event: evt.Event) -> Iterator[tuple[int, None]]:
        time.sleep(2)
        yield 0x0000, None

    ae = AE("SLOWPACS")
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_FIND, slow_find)])
    try:
        cfg = GatewayConfig(ae_title="SLOWPACS", host="127.0.0.1", port=port, dimse_timeout=0.5, label="slow PACS")
        with pytest.raises(
            GatewayTimeout, match=re.escape("slow PACS stopped answering during C-FIND: no response within 0.5 s")
        ):
            client_for(cfg, local_ae_title=PORTAL_AE).find_studies(StudyQuery(patient_id="X"))
    finally:
        server.shutdown()


def test_a_silent_dicomweb_server_times_out(silent_listener: int) -> None:
    cfg = GatewayConfig(
        dicomweb_url=f"http://127.0.0.1:{silent_listener}/dicom-web",
        query_method="qido-rs",
        retrieve_method="wado-rs",
        store_method="stow-rs",
        http_timeout=1,
    )
    started = time.monotonic()
    with pytest.raises(GatewayTimeout, match="stopped answering for 1 s"):
        client_for(cfg, local_ae_title=PORTAL_AE).find_studies(StudyQuery(patient_id="X"))
    assert time.monotonic() - started < 3


def test_an_unreachable_dicomweb_server_is_named() -> None:
    port = free_port()
    cfg = GatewayConfig(
        dicomweb_url=f"http://127.0.0.1:{port}/dicom-web",
        query_method="qido-rs",
        retrieve_method="wado-rs",
        store_method="stow-rs",
        label="trust RXH DICOMweb",
    )
    result = client_for(cfg, local_ae_title=PORTAL_AE).echo()
    assert not result.ok and result.error.startswith("trust RXH DICOMweb (http://127.0.0.1:")
    assert "could not be reached" in result.error


def test_wrong_dicomweb_credentials_are_a_permanent_error(orthanc_a: OrthancProcess) -> None:
    cfg = orthanc_config(orthanc_a, query_method="qido-rs", password="wrong")
    with pytest.raises(GatewayError, match="HTTP 401: the credentials were refused") as caught:
        client_for(cfg, local_ae_title=PORTAL_AE).find_studies(StudyQuery(patient_id="X"))
    assert caught.value.permanent
