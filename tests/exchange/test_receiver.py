"""manage.py run_dicom_receiver: dcmtk's storescu sends a good and a truncated file; both are on record."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings
from pydicom import dcmread
from pydicom.uid import generate_uid

from audit.models import AuditEvent
from dicomkit.sim.synthetic import make_study
from directory.models import Gateway
from exchange.models import QuarantinedInstance, ReceivedInstance
from tests.dicom.orthanc import free_port
from tests.helpers import require_tool

pytestmark = pytest.mark.interop
RECEIVER_AE = "IEP_TEST_RX"
# pynetdicom installs look-alike apps into the virtualenv: call Debian's dcmtk by path.
DCMTK = Path("/usr/bin")


def dcmtk(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    path = require_tool(str(DCMTK / tool), "dcmtk")
    env = {**os.environ, "TCP_NODELAY": "1"}
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=60, env=env, check=False)


@pytest.fixture
def alpha_gateway(transactional_db, trust_a) -> Gateway:
    """Trust A's PACS, calling from this machine: a caller the receiver lets in."""
    return Gateway.objects.create(trust=trust_a, name="Main PACS", ae_title="ALPHA_PACS", host="127.0.0.1", port=4242)


@pytest.fixture
def receiver_port(transactional_db, tmp_path: Path) -> Iterator[int]:
    """The command, run as an operator would, in a thread so it shares the test database."""
    from exchange.management.commands.run_dicom_receiver import Command

    port = free_port()
    command = Command()
    with override_settings(
        DICOM_AE_TITLE=RECEIVER_AE, DICOM_PORT=port, SPOOL_DIR=tmp_path / "spool", DICOM_RECEIVER_ALLOW_LIST_REFRESH=1
    ):
        thread = threading.Thread(target=call_command, args=(command, "--bind", "127.0.0.1"), daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not listening(port):
            assert time.monotonic() < deadline and thread.is_alive(), "the receiver did not start"
            time.sleep(0.1)
        yield port
        command.stopping.set()
        thread.join(timeout=10)


def listening(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def echo(port: int, calling_ae: str = "ALPHA_PACS") -> subprocess.CompletedProcess[str]:
    return dcmtk("echoscu", "-aet", calling_ae, "-aec", RECEIVER_AE, "127.0.0.1", str(port))


def truncated_image(source: Path, out: Path) -> Path:
    """Pixel Data cut to half its length, re-encoded so the file parses: what dcmtk's storescu will send
    (it refuses to read a file cut mid-element) and what a modality that crashed mid-write leaves."""
    ds = dcmread(source)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    ds.save_as(out, enforce_file_format=True)
    return out


def storescu(port: int, *paths: Path) -> subprocess.CompletedProcess[str]:
    return dcmtk("storescu", "-aet", "ALPHA_PACS", "-aec", RECEIVER_AE, "127.0.0.1", str(port), *map(str, paths))


def test_an_arrival_is_recorded(receiver_port: int, alpha_gateway: Gateway, tmp_path: Path) -> None:
    (path,) = make_study(tmp_path / "src", modality="CR", rows=64, columns=64, seed=5)
    done = storescu(receiver_port, path)
    assert done.returncode == 0, done.stderr
    row = ReceivedInstance.objects.get()
    assert row.sop_instance_uid == path.stem
    assert row.study_instance_uid == path.parent.name
    assert row.calling_ae == "ALPHA_PACS"
    assert Path(row.path).is_file() and str(tmp_path / "spool") in row.path
    assert not row.duplicate


def test_a_truncated_file_is_quarantined_audited_and_the_receiver_stays_up(
    receiver_port: int, alpha_gateway: Gateway, tmp_path: Path
) -> None:
    (good,) = make_study(tmp_path / "src", modality="CR", rows=64, columns=64, seed=6)
    bad = truncated_image(good, tmp_path / "bad.dcm")
    storescu(receiver_port, bad)  # refused with a failure status, which is the point

    row = QuarantinedInstance.objects.get()
    assert row.calling_ae == "ALPHA_PACS"
    assert "truncated" in row.reason and row.status != 0
    assert Path(row.path).is_file() and Path(row.sidecar).is_file()
    event = AuditEvent.objects.get(event_id="110107")
    assert (event.action, event.outcome, event.trust) == ("C", 8, "RAA")
    assert event.detail["quarantined"] == row.pk
    assert event.detail["reason"] == row.reason
    assert not ReceivedInstance.objects.exists()

    # Still up, and still taking good instances.
    assert echo(receiver_port).returncode == 0
    assert storescu(receiver_port, good).returncode == 0
    assert ReceivedInstance.objects.get().sop_instance_uid == good.stem


def test_garbage_on_the_port_does_not_stop_it(receiver_port: int, alpha_gateway: Gateway) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", receiver_port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(512))
        time.sleep(0.2)
    assert echo(receiver_port).returncode == 0


def test_a_port_in_use_is_a_clear_error(db, tmp_path: Path) -> None:
    import socket

    from django.core.management.base import CommandError

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with override_settings(SPOOL_DIR=tmp_path), pytest.raises(CommandError, match="Cannot start"):
            call_command("run_dicom_receiver", "--bind", "127.0.0.1", "--port", str(port))


def test_imaging_managers_see_what_their_gateways_sent_and_nobody_else_does(
    receiver_port: int, alpha_gateway: Gateway, tmp_path: Path, trust_a, amir, alice, bea, rita
) -> None:
    from tests.helpers import signed_in

    (good,) = make_study(tmp_path / "src", modality="CR", rows=64, columns=64, seed=7)
    storescu(receiver_port, truncated_image(good, tmp_path / "bad.dcm"))
    row = QuarantinedInstance.objects.get()
    assert row.sender_trust == trust_a
    assert row.reason in signed_in(amir).get("/receiver/").content.decode()
    assert row.reason in signed_in(rita).get("/receiver/").content.decode()
    assert row.reason not in signed_in(bea).get("/receiver/").content.decode()
    assert signed_in(alice).get("/receiver/").status_code == 403


def _arrival_from(calling_ae: str, address: str, study_uid: str):
    from django.utils import timezone

    from dicomkit.intake import Arrival, Peer

    return Arrival(
        path=Path("/nonexistent/x.dcm"),
        sop_instance_uid=generate_uid(),
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        study_instance_uid=study_uid,
        series_instance_uid=generate_uid(),
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        size=10,
        sha256="0" * 64,
        peer=Peer(calling_ae=calling_ae, called_ae=RECEIVER_AE, address=address),
        received_at=timezone.now(),
    )


def test_a_trust_cannot_claim_another_trusts_arrivals_by_registering_its_ae_title(
    db, trust_a, trust_b, amir, bea
) -> None:
    from exchange.services import received_instance_record
    from tests.helpers import signed_in

    Gateway.objects.create(trust=trust_b, name="Main PACS", ae_title="BETA_PACS", host="10.2.0.5", port=104)
    Gateway.objects.create(trust=trust_a, name="Copy", ae_title="BETA_PACS", host="10.1.0.9", port=104)

    from_b = received_instance_record(_arrival_from("BETA_PACS", "10.2.0.5:51234", generate_uid()))
    from_nowhere = received_instance_record(_arrival_from("BETA_PACS", "10.9.9.9:40000", generate_uid()))

    assert from_b.sender_trust == trust_b and from_nowhere.sender_trust is None
    assert from_b.study_instance_uid not in signed_in(amir).get("/receiver/").content.decode()
    assert from_b.study_instance_uid in signed_in(bea).get("/receiver/").content.decode()


def test_a_caller_not_in_the_directory_is_refused_and_on_the_audit_trail(
    receiver_port: int, alpha_gateway: Gateway, tmp_path: Path
) -> None:
    (path,) = make_study(tmp_path / "src", modality="CR", rows=64, columns=64, seed=8)
    refused = dcmtk("storescu", "-aet", "STRANGER", "-aec", RECEIVER_AE, "127.0.0.1", str(receiver_port), str(path))
    assert refused.returncode != 0
    assert "Calling AE Title Not Recognized" in refused.stderr or "calling AE title" in refused.stderr.lower()
    assert not ReceivedInstance.objects.exists() and not QuarantinedInstance.objects.exists()

    event = wait_for(lambda: AuditEvent.objects.filter(event_id="110113").first())
    assert (event.event_type, event.action, event.outcome, event.actor_type) == ("110126", "E", 4, "anonymous")
    assert event.detail["calling_ae"] == "STRANGER" and event.detail["peer"] == "127.0.0.1"
    assert event.trust == "" and "not a registered gateway" in event.reason
    assert echo(receiver_port).returncode == 0  # the trust's own gateway still gets in


def test_a_call_in_a_gateways_name_from_elsewhere_is_on_that_trusts_audit_trail(
    receiver_port: int, trust_a, tmp_path: Path
) -> None:
    Gateway.objects.create(trust=trust_a, name="Main PACS", ae_title="ALPHA_PACS", host="10.1.0.9", port=104)
    assert echo(receiver_port).returncode != 0
    event = wait_for(lambda: AuditEvent.objects.filter(event_id="110113").first())
    assert event.trust == "RAA" and event.detail["calling_ae"] == "ALPHA_PACS"


def test_a_gateway_registered_or_moved_while_the_receiver_runs_is_followed_without_a_restart(
    receiver_port: int, trust_a
) -> None:
    assert echo(receiver_port, "NEW_PACS").returncode != 0
    gateway = Gateway.objects.create(trust=trust_a, name="New PACS", ae_title="NEW_PACS", host="127.0.0.1", port=104)
    time.sleep(1.1)  # an unknown caller makes the receiver re-read the directory, at most once a second
    assert echo(receiver_port, "NEW_PACS").returncode == 0
    Gateway.objects.filter(pk=gateway.pk).update(host="10.9.9.9")  # its PACS moved
    # Re-read every second here (DICOM_RECEIVER_ALLOW_LIST_REFRESH=1): a few seconds on a loaded machine.
    assert wait_for(lambda: echo(receiver_port, "NEW_PACS").returncode != 0, timeout=15)


def wait_for(probe, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (found := probe()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def test_an_image_the_portal_cannot_decode_is_received_and_flagged_for_imaging_managers(
    receiver_port: int, alpha_gateway: Gateway, tmp_path: Path, amir
) -> None:
    from pydicom.data import get_testdata_file

    from tests.helpers import signed_in

    lossy = get_testdata_file("JPEG-lossy.dcm")  # -xx: propose JPEG Extended, its transfer syntax
    done = dcmtk("storescu", "-xx", "-aet", "ALPHA_PACS", "-aec", RECEIVER_AE, "127.0.0.1", str(receiver_port), lossy)
    assert done.returncode == 0, done.stderr
    row = ReceivedInstance.objects.get()
    assert "did not decode with the portal's decoders" in row.pixel_warning
    page = signed_in(amir).get("/receiver/").content.decode()
    assert "Image not decodable here" in page and "did not decode" in page
