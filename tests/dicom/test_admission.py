"""Who may call the receiver and how many at once: real associations over loopback, from distinct
source addresses (127.0.0.x), as trust gateways on different hosts would call."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification

from dicomkit import StorageReceiver
from dicomkit.admission import PEER_LIMIT, UNKNOWN_CALLER, Admission, AllowList, Caller, Refusal

from .orthanc import free_port

pytestmark = pytest.mark.interop
RX_AE = "GATEDRX"
PACS = Caller("RXH_PACS", "127.0.0.2", "trust RXH Main PACS")


class Refusals(list[Refusal]):
    """What the receiver reported; it reports a refusal after answering it, so tests wait a moment."""

    def __call__(self, refusal: Refusal) -> None:
        self.append(refusal)

    def wait(self, count: int, timeout: float = 5.0) -> Refusals:
        deadline = time.monotonic() + timeout
        while len(self) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self


@pytest.fixture
def callers() -> list[Caller]:
    return [PACS, Caller("LEGIT", "127.0.0.3"), Caller("IDLER", "127.0.0.4"), Caller("NAMED", "localhost")]


@pytest.fixture
def refusals() -> Refusals:
    return Refusals()


@pytest.fixture
def rx(tmp_path: Path, callers: list[Caller], refusals: Refusals) -> Iterator[StorageReceiver]:
    allow = AllowList(lambda: list(callers), refresh_seconds=0.5)
    receiver = StorageReceiver(
        RX_AE, free_port(), tmp_path / "rx", bind_address="127.0.0.1", allow_list=allow, on_refused=refusals
    ).start()
    yield receiver
    receiver.stop()


def settled(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """The receiver's side of an association ends a moment after the peer's: wait for it."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def associate(rx: StorageReceiver, ae_title: str, source: str) -> Association:
    ae = AE(ae_title)
    ae.add_requested_context(Verification)
    ae.acse_timeout = 5
    return ae.associate("127.0.0.1", rx.port, ae_title=RX_AE, bind_address=(source, 0))


def echo(rx: StorageReceiver, ae_title: str, source: str) -> bool:
    assoc = associate(rx, ae_title, source)
    if not assoc.is_established:
        return False
    try:
        return int(assoc.send_c_echo().get("Status", -1)) == 0
    finally:
        assoc.release()


def rejection(assoc: Association) -> tuple[int, int, int]:
    answer = assoc.acceptor.primitive
    assert assoc.is_rejected and answer is not None
    return (answer.result, answer.result_source, answer.diagnostic)


def test_a_registered_gateway_calling_from_its_host_is_let_in(rx: StorageReceiver) -> None:
    assert echo(rx, "RXH_PACS", "127.0.0.2")


def test_a_host_name_is_resolved(rx: StorageReceiver) -> None:
    assert echo(rx, "NAMED", "127.0.0.1")


@pytest.mark.parametrize(
    ("ae_title", "source"), [("STRANGER", "127.0.0.2"), ("RXH_PACS", "127.0.0.9")], ids=["unknown AE", "wrong host"]
)
def test_unknown_callers_are_refused_as_not_recognised_and_reported(
    rx: StorageReceiver, refusals: Refusals, ae_title: str, source: str
) -> None:
    assoc = associate(rx, ae_title, source)
    assert rejection(assoc) == (0x01, 0x01, 0x03)  # permanent: calling AE title not recognised
    (refused,) = refusals.wait(1)
    assert (refused.kind, refused.calling_ae, refused.address, refused.called_ae) == (
        UNKNOWN_CALLER,
        ae_title,
        source,
        RX_AE,
    )
    assert "not a registered gateway" in refused.reason
    assert echo(rx, "RXH_PACS", "127.0.0.2")  # and the receiver carries on


def test_a_gateway_registered_after_the_start_is_let_in_at_once_and_one_removed_is_not_for_long(
    rx: StorageReceiver, callers: list[Caller]
) -> None:
    assert not echo(rx, "NEWPACS", "127.0.0.6")
    callers.append(Caller("NEWPACS", "127.0.0.6"))
    time.sleep(1.1)  # unknown callers reload the list at most once a second
    assert echo(rx, "NEWPACS", "127.0.0.6")
    callers.remove(PACS)
    time.sleep(1.5)  # refresh_seconds=0.5 in this fixture
    assert not echo(rx, "RXH_PACS", "127.0.0.2")


def test_idle_associations_of_one_peer_cannot_starve_another(rx: StorageReceiver, refusals: Refusals) -> None:
    """Ten idle associations once took all of pynetdicom's slots: a trust's C-ECHO was refused."""
    idle = [associate(rx, "IDLER", "127.0.0.4") for _ in range(rx.admission.max_per_peer)]
    try:
        assert all(a.is_established for a in idle)
        one_more = associate(rx, "IDLER", "127.0.0.4")
        assert rejection(one_more) == (0x02, 0x03, 0x02)  # transient: local limit exceeded
        assert [r.kind for r in refusals.wait(1)] == [PEER_LIMIT]
        assert echo(rx, "LEGIT", "127.0.0.3")
    finally:
        for assoc in idle:
            assoc.release()


def test_the_receiver_limit_counts_only_associations_it_let_in(tmp_path: Path) -> None:
    allow = AllowList(lambda: [Caller("A", "127.0.0.2"), Caller("B", "127.0.0.3")])
    rx = StorageReceiver(
        RX_AE, free_port(), tmp_path, bind_address="127.0.0.1", allow_list=allow, max_associations=2, max_per_peer=2
    ).start()
    try:
        strangers = [associate(rx, "STRANGER", "127.0.0.7") for _ in range(5)]
        assert all(a.is_rejected for a in strangers)
        held = [associate(rx, "A", "127.0.0.2"), associate(rx, "A", "127.0.0.2")]
        assert all(a.is_established for a in held)
        assert rejection(associate(rx, "B", "127.0.0.3")) == (0x02, 0x03, 0x02)
        held.pop().release()
        assert settled(lambda: rx.admission.admitted_count() == 1)
        assert echo(rx, "B", "127.0.0.3")
        held.pop().release()
    finally:
        rx.stop()


def test_an_idle_association_is_ended_after_the_network_timeout(tmp_path: Path) -> None:
    allow = AllowList(lambda: [Caller("IDLER", "127.0.0.4")])
    rx = StorageReceiver(
        RX_AE, free_port(), tmp_path, bind_address="127.0.0.1", allow_list=allow, network_timeout=1.0
    ).start()
    try:
        assoc = associate(rx, "IDLER", "127.0.0.4")
        assert assoc.is_established
        assoc.join(timeout=10)  # the association thread ends when the receiver aborts it
        assert assoc.is_aborted and not assoc.is_established
        assert settled(lambda: rx.admission.admitted_count() == 0)
    finally:
        rx.stop()


def _silent(source: str, port: int) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def _closed_by_peer(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_silent_connections_from_one_address_are_capped_and_others_still_get_in(rx: StorageReceiver) -> None:
    cap = rx.admission.max_pending_per_address
    silent = [_silent("127.0.0.8", rx.port) for _ in range(cap)]
    try:
        time.sleep(0.3)
        extra = _silent("127.0.0.8", rx.port)
        assert _closed_by_peer(extra, within=3), "the connection over the cap was kept open"
        assert not _closed_by_peer(silent[0], within=0.2)
        assert echo(rx, "RXH_PACS", "127.0.0.2")
    finally:
        for sock in silent:
            sock.close()
    assert settled(lambda: rx.admission.may_connect("127.0.0.8"))  # closed connections stop counting


def test_a_pdu_longer_than_the_limit_closes_the_connection(rx: StorageReceiver) -> None:
    """pynetdicom would read a PDU whole into memory whatever length its header claims."""
    sock = _silent("127.0.0.2", rx.port)
    try:
        sock.sendall(b"\x01\x00" + (200 * 1024 * 1024).to_bytes(4, "big") + b"\x00" * 65536)
        assert _closed_by_peer(sock, within=5)
    finally:
        sock.close()
    assert echo(rx, "RXH_PACS", "127.0.0.2")


def test_refusals_are_reported_at_most_once_a_period_per_caller_with_a_count() -> None:
    seen: list[Refusal] = []
    admission = Admission(on_refused=seen.append, report_every=0.3)
    refusal = Refusal(UNKNOWN_CALLER, "not registered", "STRANGER", RX_AE, "10.0.0.9")
    for _ in range(5):
        admission.report(refusal)
    admission.report(Refusal(UNKNOWN_CALLER, "not registered", "OTHER", RX_AE, "10.0.0.9"))
    time.sleep(0.35)
    admission.report(refusal)
    assert [(r.calling_ae, r.repeats) for r in seen] == [("STRANGER", 1), ("OTHER", 1), ("STRANGER", 5)]


def test_the_allow_list_keeps_the_last_good_list_when_a_reload_fails() -> None:
    calls = {"n": 0}

    def flaky() -> list[Caller]:
        calls["n"] += 1
        if calls["n"] > 1:
            raise RuntimeError("database is down")
        return [PACS]

    allow = AllowList(flaky, refresh_seconds=0.1).start()
    try:
        time.sleep(0.35)
        assert calls["n"] > 2
        assert allow.match("RXH_PACS", "127.0.0.2") == PACS
    finally:
        allow.stop()


def test_a_receiver_whose_allow_list_cannot_load_does_not_start(tmp_path: Path) -> None:
    def broken() -> list[Caller]:
        raise RuntimeError("no such table: directory_gateway")

    rx = StorageReceiver(RX_AE, free_port(), tmp_path, bind_address="127.0.0.1", allow_list=AllowList(broken))
    with pytest.raises(RuntimeError, match="directory_gateway"):
        rx.start()
    assert not [t for t in threading.enumerate() if t.name == "receiver-allow-list"]


def test_a_connection_stalled_in_the_middle_of_a_pdu_is_closed_after_the_network_timeout(tmp_path: Path) -> None:
    """It held a connection and two threads for ever: pynetdicom read the rest of the PDU without a limit."""
    allow = AllowList(lambda: [PACS])
    rx = StorageReceiver(
        RX_AE, free_port(), tmp_path, bind_address="127.0.0.1", allow_list=allow, network_timeout=1, acse_timeout=1
    ).start()
    try:
        sock = _silent("127.0.0.2", rx.port)
        sock.sendall(b"\x01\x00" + (200).to_bytes(4, "big") + b"\x00" * 10)  # 10 of 200 bytes, then nothing
        assert _closed_by_peer(sock, within=8)
        sock.close()
        assert settled(lambda: not rx._server.active_associations)  # type: ignore[union-attr]
    finally:
        rx.stop()
