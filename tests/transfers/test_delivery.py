"""Proof of delivery and what the destination already holds (issue #20, issue #19 point 5), against real
Orthanc servers: the plan comes from counts, the destination's per-instance answer is the proof, one count
check after the last instance catches a PACS that answers Success and loses the image, and instances the
destination already holds are `already_present`, never sent and never failures."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage

from dicomkit import GatewayConfig, GatewayError, StoreResult, dicomweb
from dicomkit.dicomweb import DicomWebClient
from dicomkit.dimse import DimseClient
from directory.models import SharingAgreement
from tests.dicom.orthanc import OrthancProcess, free_port
from transfers import engine, services
from transfers.engine import ledger
from transfers.models import InstanceState, Status, Transfer

from .peers import orthanc_gateway, sop_uids_held, start_orthanc

pytestmark = [pytest.mark.django_db, pytest.mark.interop]

# Orthanc runs OnStoredInstance after it has answered the C-STORE: the first instance of each
# association-free run it is given is deleted again, so the sender saw Success for an image the PACS no
# longer indexes. Later callbacks queue behind the deletion, so it has happened before the last one.
DROP_FIRST = """
dropped = false
function OnStoredInstance(instanceId, tags, metadata, origin)
  if not dropped then
    dropped = true
    RestApiDelete('/instances/' .. instanceId)
  end
end
"""


@pytest.fixture(scope="module")
def lossy_orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancProcess]:
    """An Orthanc that acknowledges every instance and silently loses the first it stores."""
    root = tmp_path_factory.mktemp("lossy-orthanc")
    script = root / "drop-first.lua"
    script.write_text(DROP_FIRST)
    server = start_orthanc(root / "server", "LOSSY", extra={"LuaScripts": [str(script)]})
    yield server
    server.remove()


@pytest.fixture
def region(pacs_pair, trust_a, trust_b, settings, tmp_path):
    settings.SPOOL_DIR = tmp_path / "spool"
    SharingAgreement.objects.create(trust_a=trust_a, trust_b=trust_b)
    a, b = pacs_pair
    return orthanc_gateway(trust_a, a), orthanc_gateway(trust_b, b)


@pytest.fixture
def clean_b(pacs_pair, ct_study):
    pacs_pair[1].delete_study(ct_study.uid)
    yield
    pacs_pair[1].delete_study(ct_study.uid)


def push(alice, trust_a, trust_b, study_uid: str) -> Transfer:
    return services.transfer_create(
        source=trust_a,
        destination=trust_b,
        study_instance_uids=[study_uid],
        priority="trauma",
        reason="Trauma transfer",
        requested_by=alice,
    )


class Spy:
    """Counts the calls of some gateway operations of a client, passing them on."""

    def __init__(self, client, *names: str) -> None:
        self.calls: dict[str, list[tuple]] = {name: [] for name in names}
        for name in names:
            real = getattr(client, name)

            def spy(*args, _real=real, _name=name, **kwargs):
                self.calls[_name].append(args)
                return _real(*args, **kwargs)

            setattr(client, name, spy)


def test_a_transfer_is_planned_from_counts_and_proved_by_answers_without_listing_instances(
    region, clean_b, pacs_pair, ct_study, alice, trust_a, trust_b
):
    """Neither PACS is asked for an instance-level listing of a study that moves in one pass (Orthanc's
    DICOMweb plugin reads every file to answer one): the source counts its series, the destination
    answers each instance and then counts its series once."""
    transfer = push(alice, trust_a, trust_b, ct_study.uid)
    clients = engine.clients_for(transfer)
    source = Spy(clients.source, "find_instances", "find_instance_uids", "find_series")
    destination = Spy(clients.destination, "find_instances", "find_instance_uids", "find_series", "find_studies")

    assert engine.run(transfer.pk, owner="test", clients=clients) == Status.COMPLETED

    assert source.calls["find_instances"] == source.calls["find_instance_uids"] == []
    assert len(source.calls["find_series"]) == 1
    assert destination.calls["find_instances"] == destination.calls["find_instance_uids"] == []
    assert len(destination.calls["find_studies"]) == 1  # does it hold any of the study? (none)
    assert len(destination.calls["find_series"]) == 1  # the count check
    transfer.refresh_from_db()
    assert transfer.planned == {ct_study.uid: len(ct_study.paths)} and transfer.instances_planned == len(ct_study.paths)
    assert all(len(row.sha256) == 64 for row in transfer.instances.all())  # as sent
    assert sorted(sop_uids_held(pacs_pair[1], ct_study.uid)) == sorted(ct_study.sop_uids)


def test_a_destination_that_answers_success_and_loses_an_image_is_caught_by_the_count_check(
    pacs_pair, lossy_orthanc, ct_study, alice, trust_a, trust_b, settings, tmp_path
):
    settings.SPOOL_DIR = tmp_path / "spool"
    SharingAgreement.objects.create(trust_a=trust_a, trust_b=trust_b)
    orthanc_gateway(trust_a, pacs_pair[0])
    orthanc_gateway(trust_b, lossy_orthanc)
    lossy_orthanc.delete_study(ct_study.uid)
    transfer = push(alice, trust_a, trust_b, ct_study.uid)

    status = engine.run(transfer.pk, owner="test")

    assert status == Status.COMPLETED_WITH_ERRORS
    held = set(sop_uids_held(lossy_orthanc, ct_study.uid))
    assert len(held) == len(ct_study.paths) - 1
    (lost,) = ct_study.sop_uids - held
    row = transfer.instances.get(sop_instance_uid=lost)
    assert row.state == InstanceState.FAILED and "does not list it in its index" in row.last_error
    assert transfer.instances.filter(state=InstanceState.STORED).count() == len(held)
    transfer.refresh_from_db()
    assert [e["sop_instance_uid"] for e in transfer.errors] == [lost]


def test_a_study_the_destination_already_holds_ends_completed_and_sends_nothing(
    region, clean_b, pacs_pair, ct_study, alice, trust_a, trust_b
):
    pacs_pair[1].upload(ct_study.paths)
    before = pacs_pair[1].session().get(f"{pacs_pair[1].url}/statistics", timeout=10).json()["CountInstances"]
    transfer = push(alice, trust_a, trust_b, ct_study.uid)
    clients = engine.clients_for(transfer)
    sent = Spy(clients.destination, "store")
    retrieved = Spy(clients.source, "retrieve")

    assert engine.run(transfer.pk, owner="test", clients=clients) == Status.COMPLETED

    assert sent.calls["store"] == [] and retrieved.calls["retrieve"] == []
    states = set(transfer.instances.values_list("state", flat=True))
    assert states == {InstanceState.ALREADY_PRESENT} and transfer.instances.count() == len(ct_study.paths)
    transfer.refresh_from_db()
    assert transfer.errors == []
    after = pacs_pair[1].session().get(f"{pacs_pair[1].url}/statistics", timeout=10).json()["CountInstances"]
    assert after == before


def test_only_what_the_destination_lacks_is_sent(region, clean_b, pacs_pair, ct_study, alice, trust_a, trust_b):
    pacs_pair[1].upload(ct_study.paths[:5])
    transfer = push(alice, trust_a, trust_b, ct_study.uid)
    clients = engine.clients_for(transfer)
    real_store = clients.destination.store
    sent: list[str] = []

    def spy(paths):
        paths = list(paths)
        sent.extend(p.stem for p in paths)
        return real_store(paths)

    clients.destination.store = spy

    assert engine.run(transfer.pk, owner="test", clients=clients) == Status.COMPLETED

    present = {p.stem for p in ct_study.paths[:5]}
    assert set(sent) == ct_study.sop_uids - present
    rows = dict(transfer.instances.values_list("sop_instance_uid", "state"))
    assert {uid for uid, state in rows.items() if state == InstanceState.ALREADY_PRESENT} == present
    assert sorted(sop_uids_held(pacs_pair[1], ct_study.uid)) == sorted(ct_study.sop_uids)


def test_a_duplicate_answer_counts_as_present_and_a_retry_lists_each_error_once(
    region, clean_b, pacs_pair, ct_study, alice, trust_a, trust_b
):
    """A PACS answering 0x0111 (Duplicate SOP Instance) holds the instance: not a failure. A real refusal
    fails; retried, it is listed once, not once per pass."""
    transfer = push(alice, trust_a, trust_b, ct_study.uid)
    clients = engine.clients_for(transfer)
    real_store = clients.destination.store
    duplicate, refused = sorted(ct_study.sop_uids)[:2]

    def store(paths):
        results = []
        for path, result in zip(paths := list(paths), real_store(paths), strict=True):
            if path.stem == duplicate:
                result = StoreResult(path, duplicate, True, 0x0111, "already holds it", already_present=True)
            elif path.stem == refused:
                result = StoreResult(path, refused, False, 0xC000, "cannot understand", permanent=True)
            results.append(result)
        return results

    clients.destination.store = store
    assert engine.run(transfer.pk, owner="test", clients=clients) == Status.COMPLETED_WITH_ERRORS
    assert transfer.instances.get(sop_instance_uid=duplicate).state == InstanceState.ALREADY_PRESENT

    for _ in range(2):
        services.transfer_retry(transfer=Transfer.objects.get(pk=transfer.pk), user=alice)
        assert engine.run(transfer.pk, owner="test", clients=clients) == Status.COMPLETED_WITH_ERRORS

    transfer.refresh_from_db()
    assert [e.get("sop_instance_uid") for e in transfer.errors] == [refused]
    assert transfer.instances.get(sop_instance_uid=duplicate).state == InstanceState.ALREADY_PRESENT


def test_a_resumed_pass_lists_the_source_once_to_know_what_is_left(
    region, clean_b, pacs_pair, ct_study, alice, trust_a, trust_b
):
    transfer = push(alice, trust_a, trust_b, ct_study.uid)
    clients = engine.clients_for(transfer)
    real_store = clients.destination.store
    first = threading.Lock()

    def store_once_then_fail(paths):
        if first.acquire(blocking=False):
            return real_store(paths)
        raise GatewayError("connection reset by peer")

    clients.destination.store = store_once_then_fail
    with pytest.raises(GatewayError):
        engine.run(transfer.pk, owner="worker-1", clients=clients)
    assert 0 < transfer.instances.filter(state=InstanceState.STORED).count() < len(ct_study.paths)

    clients = engine.clients_for(transfer)
    source = Spy(clients.source, "find_instances")
    assert engine.run(transfer.pk, owner="worker-2", clients=clients) == Status.COMPLETED
    assert len(source.calls["find_instances"]) == 1
    assert sorted(sop_uids_held(pacs_pair[1], ct_study.uid)) == sorted(ct_study.sop_uids)


@pytest.mark.parametrize("sender", ["pynetdicom", "dcmsend"])
def test_a_duplicate_status_from_a_dimse_peer_is_already_present(ct_study, sender):
    """A pynetdicom SCP answering 0x0111 to the first C-STORE (as many PACS do for an instance they hold)
    and a refusal to the second: each file's own answer, whichever program sends."""
    answers = iter([0x0111, 0xA900, 0x0000])
    ae = AE(ae_title="DUPES")
    ae.add_supported_context(CTImageStorage, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
    port = free_port()
    handlers = [(evt.EVT_C_STORE, lambda event: next(answers))]
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=handlers)
    try:
        config = GatewayConfig(label="Dupes", ae_title="DUPES", host="127.0.0.1", port=port, store_sender=sender)
        duplicate, refused, stored = DimseClient(config, local_ae_title="PORTAL").store(ct_study.paths[:3])
    finally:
        server.shutdown()
    assert duplicate.ok and duplicate.already_present and duplicate.status == 0x0111
    assert not refused.ok and refused.status == 0xA900 and "0xA900" in refused.message
    assert stored.ok and not stored.already_present and stored.sop_instance_uid == ct_study.paths[2].stem


def test_dcmsend_to_a_closed_port_is_an_unreachable_gateway(ct_study):
    port = free_port()
    config = GatewayConfig(label="Nobody", ae_title="NOBODY", host="127.0.0.1", port=port, store_sender="dcmsend")
    with pytest.raises(GatewayError) as raised:
        DimseClient(config, local_ae_title="PORTAL").store(ct_study.paths[:1])
    assert not raised.value.permanent


def test_mark_stored_records_a_duplicate_answer_as_already_present(region, ct_study, alice, trust_a, trust_b):
    transfer = push(alice, trust_a, trust_b, ct_study.uid)
    transfer.instances.create(sop_instance_uid="1.2.3", study_instance_uid=ct_study.uid, state="retrieved")
    item = type("Sent", (), {"sop_instance_uid": "1.2.3", "study_instance_uid": ct_study.uid})()
    result = StoreResult(Path("x"), "1.2.3", True, 0x0111, already_present=True)

    assert ledger.mark_stored(transfer, [item], [result]) == {ct_study.uid: ["1.2.3"]}
    assert transfer.instances.get().state == InstanceState.ALREADY_PRESENT


def test_a_stow_answer_naming_an_instance_failed_as_a_duplicate_is_already_present():
    """PS3.18: a FailedSOPSequence entry with FailureReason 0x0111 means the origin server holds it."""
    config = GatewayConfig(
        label="Web",
        dicomweb_url="http://127.0.0.1:9",
        retrieve_method="wado-rs",
        store_method="stow-rs",
        query_method="qido-rs",
    )
    client = DicomWebClient(config)
    response = requests.models.Response()
    response.status_code = 409
    failed = [
        {"00081155": {"vr": "UI", "Value": [uid]}, "00081197": {"vr": "US", "Value": [reason]}}
        for uid, reason in (("1.2.3", 0x0111), ("1.2.4", 0xC000))
    ]
    stored = [{"00081155": {"vr": "UI", "Value": ["1.2.5"]}}]
    response._content = json.dumps(
        {"00081198": {"vr": "SQ", "Value": failed}, "00081199": {"vr": "SQ", "Value": stored}}
    ).encode()
    outcome = dicomweb._stow_outcome(response)

    duplicate, refused, sent = (client._stow_result(Path(uid), uid, outcome) for uid in ("1.2.3", "1.2.4", "1.2.5"))
    assert duplicate.ok and duplicate.already_present
    assert not refused.ok and "0xC000" in refused.message
    assert sent.ok and not sent.already_present
