"""The engine in this process against two real Orthanc servers: moves, resumes, verifies, audits."""

from __future__ import annotations

import errno
import hashlib
import shutil
import threading
import time
from pathlib import Path

import pytest
from pydicom import dcmread

from audit.models import AuditEvent
from dicomkit import GatewayError, StoreResult, dicomweb
from dicomkit.dimse import DimseClient
from dicomkit.gateway import GatewayClient
from dicomkit.retrieval import Retrieval, describe
from dicomkit.sim.synthetic import make_study
from dicomkit.spool import TEMP_PREFIX
from directory.models import SharingAgreement
from exchange.models import QuarantinedInstance
from tests.helpers import api_as
from transfers import engine, services
from transfers.engine import lease, ledger, pipeline, plan
from transfers.models import InstanceState, Status, Transfer

from .peers import orthanc_gateway, sop_uids_held

pytestmark = [pytest.mark.django_db, pytest.mark.interop]


@pytest.fixture
def region(pacs_pair, trust_a, trust_b, alice, settings, tmp_path):
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


def test_a_study_moves_from_a_to_b_and_b_lists_every_instance(
    region, clean_b, pacs_pair, ct_study, alice, trust_a, trust_b
):
    transfer = push(alice, trust_a, trust_b, ct_study.uid)

    assert engine.run(transfer.pk, owner="test") == Status.COMPLETED

    assert sorted(sop_uids_held(pacs_pair[1], ct_study.uid)) == sorted(ct_study.sop_uids)
    transfer.refresh_from_db()
    assert transfer.errors == [] and transfer.completed_at and transfer.lease_owner == ""
    ledger = list(transfer.instances.all())
    assert {row.state for row in ledger} == {InstanceState.STORED}
    assert {row.sop_instance_uid for row in ledger} == ct_study.sop_uids
    # Sizes are of the files as retrieved: the source rewrites the file meta header, not the dataset.
    assert abs(sum(row.size for row in ledger) - ct_study.size) < ct_study.size / 100
    assert all(len(row.sha256) == 64 and row.attempts == 1 for row in ledger)
    assert not (engine.spool_dir(transfer.pk)).exists()


def test_completion_is_audited_with_patient_studies_source_and_destination(
    region, clean_b, ct_study, alice, trust_a, trust_b
):
    transfer = push(alice, trust_a, trust_b, ct_study.uid)
    engine.run(transfer.pk, owner="test")

    event = AuditEvent.objects.get(event_id="110104")
    assert (event.trust, event.peer_trust, event.outcome) == ("RAA", "RBB", 0)
    assert event.study_uids == [ct_study.uid]
    assert event.patient_id and (event.patient_id, event.nhs_number) == (
        Transfer.objects.get(pk=transfer.pk).patient_id,
        Transfer.objects.get(pk=transfer.pk).nhs_number,
    )
    assert event.detail["instances_stored"] == len(ct_study.paths)
    assert event.actor_type == "system"


def test_a_resumed_transfer_never_resends_what_the_ledger_marks_stored(
    region, clean_b, pacs_pair, ct_study, alice, trust_a, trust_b, monkeypatch
):
    transfer = push(alice, trust_a, trust_b, ct_study.uid)
    real_store = DimseClient.store
    sent: list[str] = []
    lock = threading.Lock()

    def store_once_then_lose_the_network(self, paths):
        paths = list(paths)
        with lock:
            if sent:
                raise GatewayError("connection reset by peer")
            sent.extend(p.stem for p in paths)
        return real_store(self, paths)

    monkeypatch.setattr(DimseClient, "store", store_once_then_lose_the_network)
    with pytest.raises(GatewayError):
        engine.run(transfer.pk, owner="worker-1")
    stored_first = set(transfer.instances.filter(state=InstanceState.STORED).values_list("sop_instance_uid", flat=True))
    assert stored_first == set(sent) and 0 < len(sent) < len(ct_study.paths)

    resent: list[str] = []

    def spy(self, paths):
        paths = list(paths)
        with lock:
            resent.extend(p.stem for p in paths)
        return real_store(self, paths)

    monkeypatch.setattr(DimseClient, "store", spy)
    assert engine.run(transfer.pk, owner="worker-2") == Status.COMPLETED

    assert not set(resent) & stored_first
    assert set(resent) | stored_first == ct_study.sop_uids
    assert sorted(sop_uids_held(pacs_pair[1], ct_study.uid)) == sorted(ct_study.sop_uids)


def test_a_second_worker_waits_while_the_lease_is_fresh(region, ct_study, alice, trust_a, trust_b):
    transfer = push(alice, trust_a, trust_b, ct_study.uid)
    engine.claim(transfer.pk, "worker-1")
    with pytest.raises(engine.Busy):
        engine.claim(transfer.pk, "worker-2")


def test_a_study_the_source_does_not_hold_fails_with_a_reason(region, clean_b, alice, trust_a, trust_b):
    transfer = push(alice, trust_a, trust_b, "1.2.826.0.1.3680043.8.498.999")

    assert engine.run(transfer.pk, owner="test") == Status.FAILED

    transfer.refresh_from_db()
    assert "holds no instances of this study" in transfer.errors[0]["error"]
    assert AuditEvent.objects.get(event_id="110104").outcome == 8


def test_a_cancelled_transfer_is_not_run(region, ct_study, alice, trust_a, trust_b):
    transfer = push(alice, trust_a, trust_b, ct_study.uid)
    services.transfer_cancel(transfer=transfer, user=alice)

    assert engine.run(transfer.pk, owner="test") == "already finished"
    assert not transfer.instances.exists()


def test_an_unreachable_destination_is_retried_then_failed_after_the_window(
    region, ct_study, alice, trust_a, trust_b, settings
):
    _, gateway_b = region
    type(gateway_b).objects.filter(pk=gateway_b.pk).update(port=1)  # nothing listens there
    transfer = push(alice, trust_a, trust_b, ct_study.uid)
    with pytest.raises(GatewayError) as raised:
        engine.run(transfer.pk, owner="test")
    assert not raised.value.permanent

    settings.TRANSFER_RETRY_WINDOW = 3600
    first = engine.next_retry_delay(transfer.pk, raised.value, jitter=0.0)
    second = engine.next_retry_delay(transfer.pk, raised.value, jitter=0.0)
    assert first == settings.TRANSFER_RETRY_BASE_DELAY / 2 and second == 2 * first

    settings.TRANSFER_RETRY_WINDOW = 0
    assert engine.next_retry_delay(transfer.pk, raised.value, jitter=0.5) is None
    transfer.refresh_from_db()
    assert transfer.status == Status.FAILED
    assert "Gave up after 3 tries" in transfer.errors[-1]["error"]
    assert api_as(alice).get(f"/api/v1/transfers/{transfer.pk}/").json()["status"] == "failed"


@pytest.mark.parametrize("streams", [1, 3])
def test_cancelling_mid_transfer_stops_sending_and_records_what_arrived(
    region, clean_b, pacs_pair, ct_study, alice, trust_a, trust_b, monkeypatch, settings, streams
):
    settings.TRANSFER_STORE_STREAMS = streams
    transfer = push(alice, trust_a, trust_b, ct_study.uid)
    real_mark_stored = ledger.mark_stored
    recorded: list[int] = []

    def cancel_after_first_batch(transfer_, sent, results):
        stored = real_mark_stored(transfer_, sent, results)
        if not recorded:
            services.transfer_cancel(transfer=transfer, user=alice)
        recorded.append(len(results))
        return stored

    # Cancelled from the engine's own thread, the one that uses the database, once a batch is recorded;
    # small batches, so that what can be in flight then is less than the study.
    monkeypatch.setattr(ledger, "mark_stored", cancel_after_first_batch)
    monkeypatch.setattr(pipeline, "BATCH_SIZE", 4)
    assert engine.run(transfer.pk, owner="test") == "stopped"

    transfer.refresh_from_db()
    assert transfer.status == Status.CANCELLED
    stored = transfer.instances.filter(state=InstanceState.STORED).count()
    # Batches already on the wire (one per store stream at most) still land and are recorded; no more go.
    assert len(recorded) <= streams and stored == sum(recorded) < len(ct_study.paths)
    assert len(sop_uids_held(pacs_pair[1], ct_study.uid)) == stored
    event = AuditEvent.objects.get(event_id="110104")
    assert event.outcome == 4 and event.detail["instances_stored"] == stored


def test_an_instance_the_destination_acknowledged_but_does_not_list_is_not_reported_as_sent(
    region, clean_b, pacs_pair, ct_study, alice, trust_a, trust_b
):
    """Verification asks the destination's own index, while later batches are still being sent and then
    for what is left: a PACS that answers Success and loses the image is caught."""
    transfer = push(alice, trust_a, trust_b, ct_study.uid)
    clients = engine.clients_for(transfer)
    real_store = clients.destination.store
    lost: list[str] = []
    once = threading.Lock()  # batches go out on several store streams at once

    def store_losing_one(paths):
        paths = list(paths)
        with once:
            first = not lost
            if first:
                lost.append(dcmread(paths[0], stop_before_pixels=True).SOPInstanceUID)
        if not first:
            return real_store(paths)
        return [StoreResult(paths[0], lost[0], True, status=0), *real_store(paths[1:])]

    clients.destination.store = store_losing_one

    assert engine.run(transfer.pk, owner="test", clients=clients) == Status.COMPLETED_WITH_ERRORS

    row = transfer.instances.get(sop_instance_uid=lost[0])
    assert row.state == InstanceState.FAILED and "does not list it in its index" in row.last_error
    assert transfer.instances.filter(state=InstanceState.STORED).count() == len(ct_study.paths) - 1
    assert sorted(sop_uids_held(pacs_pair[1], ct_study.uid)) == sorted(ct_study.sop_uids - {lost[0]})


def test_a_pass_holds_instances_in_the_scratch_folder_while_it_has_room(
    region, clean_b, pacs_pair, ct_study, alice, trust_a, trust_b, settings, tmp_path
):
    settings.TRANSFER_SCRATCH_DIR = str(tmp_path / "scratch")
    transfer = push(alice, trust_a, trust_b, ct_study.uid)
    clients = engine.clients_for(transfer)
    real_retrieve = clients.source.retrieve
    folders: list[Path] = []

    def spy(*args, spool_dir, **kwargs):
        folders.append(Path(spool_dir))
        return real_retrieve(*args, spool_dir=spool_dir, **kwargs)

    clients.source.retrieve = spy

    assert engine.run(transfer.pk, owner="test", clients=clients) == Status.COMPLETED

    assert folders and folders[0].is_relative_to(tmp_path / "scratch" / str(transfer.pk))
    assert not (tmp_path / "scratch" / str(transfer.pk)).exists()  # nothing left behind
    assert sorted(sop_uids_held(pacs_pair[1], ct_study.uid)) == sorted(ct_study.sop_uids)

    disk_spool = settings.SPOOL_DIR / "transfers" / str(transfer.pk)
    assert engine.spool_dir(transfer.pk, shared=True) == disk_spool  # C-MOVE: the receiver writes there too
    settings.TRANSFER_SCRATCH_RESERVE = 1 << 62  # more than any disk has free: the pass spools on disk
    assert engine.spool_dir(transfer.pk) == disk_spool


def test_a_full_spool_is_a_transient_error_that_names_the_folder(
    region, ct_study, alice, trust_a, trust_b, settings, tmp_path
):
    settings.TRANSFER_SCRATCH_DIR = str(tmp_path / "scratch")
    transfer = push(alice, trust_a, trust_b, ct_study.uid)
    clients = engine.clients_for(transfer)

    def disk_full(summary):
        raise OSError(errno.ENOSPC, "No space left on device")
        yield  # a generator, as every retrieval is

    clients.source.retrieve = lambda *args, **kwargs: Retrieval(disk_full)

    with pytest.raises(GatewayError) as raised:
        engine.run(transfer.pk, owner="test", clients=clients)

    assert not raised.value.permanent  # retried with backoff, like a gateway that is down
    assert "has no space left" in str(raised.value) and str(tmp_path / "scratch") in str(raised.value)
    transfer.refresh_from_db()
    assert transfer.status not in (Status.FAILED, Status.COMPLETED) and transfer.lease_owner == ""


class _WorkerKilled(BaseException):
    """Stands for a `kill -9`: nothing of the pass's own error handling gets to run after it."""


def test_a_pass_cut_short_before_the_source_was_listed_loses_nothing_on_resume(
    region, clean_b, pacs_pair, ct_study, alice, trust_a, trust_b, monkeypatch
):
    """The source's index is listed while the study already flows. A worker that dies before that listing
    is recorded (a big study on a busy PACS: the listing takes a while) leaves ledger rows for the first
    batches only; the next pass must still move every instance, not just the ones the ledger knows."""
    transfer = push(alice, trust_a, trust_b, ct_study.uid)
    clients = engine.clients_for(transfer)
    real_find, real_store = clients.source.find_instances, clients.destination.store
    died, first_batch = threading.Event(), threading.Lock()

    def slow_listing(study_uid, series_uid=None):
        died.wait(timeout=30)
        return real_find(study_uid, series_uid)

    def store_once_then_die(paths):
        if first_batch.acquire(blocking=False):
            return real_store(paths)
        died.set()
        raise _WorkerKilled

    clients.source.find_instances = slow_listing
    clients.destination.store = store_once_then_die
    monkeypatch.setattr(pipeline, "BATCH_SIZE", 4)
    monkeypatch.setattr(plan.Planner, "record", lambda self: None)  # died before it could
    with pytest.raises(_WorkerKilled):
        engine.run(transfer.pk, owner="worker-1", clients=clients)
    monkeypatch.undo()
    assert transfer.instances.filter(state=InstanceState.STORED).exists()
    assert transfer.instances.count() < len(ct_study.paths)  # the rows of the batches it reached, no more

    assert engine.run(transfer.pk, owner="worker-2") == Status.COMPLETED

    assert sorted(sop_uids_held(pacs_pair[1], ct_study.uid)) == sorted(ct_study.sop_uids)
    assert transfer.instances.filter(state=InstanceState.STORED).count() == len(ct_study.paths)


def test_instances_of_another_study_the_source_answers_with_are_not_passed_on(
    region, clean_b, pacs_pair, ct_study, alice, trust_a, trust_b, tmp_path
):
    """A PACS whose index and files disagree can answer a study's retrieve with another patient's images."""
    (stray,) = make_study(tmp_path / "stray", modality="CT", n_instances=1, rows=32, columns=32, seed=72)
    transfer = push(alice, trust_a, trust_b, ct_study.uid)
    clients = engine.clients_for(transfer)
    real_retrieve = clients.source.retrieve

    def retrieve_and_more(study_uid, *args, spool_dir, **kwargs):
        def instances(summary):
            with real_retrieve(study_uid, *args, spool_dir=spool_dir, **kwargs) as retrieval:
                yield from retrieval
            landed = Path(spool_dir) / stray.name
            shutil.copy(stray, landed)
            yield describe(landed)
            summary.status = 0

        return Retrieval(instances)

    clients.source.retrieve = retrieve_and_more

    assert engine.run(transfer.pk, owner="test", clients=clients) == Status.COMPLETED_WITH_ERRORS

    transfer.refresh_from_db()
    assert "answered with instances of another study" in transfer.errors[0]["error"]
    assert not sop_uids_held(pacs_pair[1], dcmread(stray).StudyInstanceUID)
    assert sorted(sop_uids_held(pacs_pair[1], ct_study.uid)) == sorted(ct_study.sop_uids)
    assert set(transfer.instances.values_list("sop_instance_uid", flat=True)) == ct_study.sop_uids


@pytest.fixture
def wado_or_cget(pacs_pair, trust_a, trust_b, settings, tmp_path, request):
    """Orthanc A as a source retrieved from by request.param, Orthanc B as the destination."""
    settings.SPOOL_DIR = tmp_path / "spool"
    SharingAgreement.objects.create(trust_a=trust_a, trust_b=trust_b)
    a, b = pacs_pair
    orthanc_gateway(trust_a, a, retrieve_method=request.param, dicomweb_url=a.dicomweb_url)
    orthanc_gateway(trust_b, b)
    return a, b


@pytest.mark.parametrize("wado_or_cget", ["c-get", "wado-rs"], indirect=True)
def test_a_damaged_instance_fails_in_the_first_pass_with_its_reason_and_is_kept_for_the_managers(
    wado_or_cget, damaged_study, alice, trust_a, trust_b, monkeypatch
):
    _, b = wado_or_cget
    study, bad_uid = damaged_study
    b.delete_study(study.uid)
    # The source's listing (the plan) runs beside the move; here it answers only once the damaged copy
    # has been refused, as a busy PACS's index may.
    listed = GatewayClient.find_instances

    def slow_listing(self, *args, **kwargs):
        time.sleep(1.5)
        return listed(self, *args, **kwargs)

    monkeypatch.setattr(GatewayClient, "find_instances", slow_listing)
    transfer = push(alice, trust_a, trust_b, study.uid)

    # One pass: a damaged copy is not worth asking the source for again (no "not delivered yet" retries).
    assert engine.run(transfer.pk, owner="test") == Status.COMPLETED_WITH_ERRORS

    bad = transfer.instances.get(sop_instance_uid=bad_uid)
    assert bad.state == InstanceState.FAILED and "truncated" in bad.last_error, bad.last_error
    assert sorted(sop_uids_held(b, study.uid)) == sorted(study.sop_uids)
    kept = QuarantinedInstance.objects.get(sop_instance_uid=bad_uid)
    assert kept.sender_trust == trust_a and "truncated" in kept.reason
    assert dcmread(kept.path, stop_before_pixels=True).SOPInstanceUID == bad_uid  # the bytes, for inspection
    assert AuditEvent.objects.filter(event_id="110107", detail__sop_instance_uid=bad_uid).exists()


@pytest.mark.parametrize("wado_or_cget", ["wado-rs"], indirect=True)
def test_a_second_different_copy_of_an_instance_in_one_retrieval_is_reported_and_kept(
    wado_or_cget, ct_study, alice, trust_a, trust_b, monkeypatch
):
    """A source whose index holds two objects under one SOP Instance UID answers with both."""
    _, b = wado_or_cget
    b.delete_study(ct_study.uid)
    real_parts = dicomweb._parts_to_files
    changed: list[str] = []

    def parts_and_a_changed_copy(chunks, boundary, folder):
        first = None
        for temp, size, sha256 in real_parts(chunks, boundary, folder):
            first = first or dcmread(temp)
            yield temp, size, sha256
        first.PatientName = "OTHER^PATIENT"
        copy = folder / f"{TEMP_PREFIX}changed.dcm"
        first.save_as(copy, enforce_file_format=True)
        changed.append(str(first.SOPInstanceUID))
        data = copy.read_bytes()
        yield copy, len(data), hashlib.sha256(data).hexdigest()

    monkeypatch.setattr(dicomweb, "_parts_to_files", parts_and_a_changed_copy)
    transfer = push(alice, trust_a, trust_b, ct_study.uid)

    assert engine.run(transfer.pk, owner="test") == Status.COMPLETED_WITH_ERRORS

    transfer.refresh_from_db()
    (uid,) = changed
    assert [e for e in transfer.errors if "second, different copy" in e["error"] and uid in e["error"]], transfer.errors
    assert sorted(sop_uids_held(b, ct_study.uid)) == sorted(ct_study.sop_uids)  # the first copy, once
    kept = QuarantinedInstance.objects.get(sop_instance_uid=uid)
    assert "different content" in kept.reason and kept.sender_trust == trust_a
    assert str(dcmread(kept.path).PatientName) == "OTHER^PATIENT"


def test_a_transfer_whose_agreement_was_withdrawn_while_queued_sends_nothing(
    region, clean_b, pacs_pair, ct_study, alice, trust_a, trust_b
):
    transfer = push(alice, trust_a, trust_b, ct_study.uid)
    SharingAgreement.objects.update(active=False)

    with pytest.raises(engine.AgreementWithdrawn) as raised:
        engine.run(transfer.pk, owner="test")

    assert raised.value.permanent and "no longer allows" in str(raised.value)  # the task fails it with this
    assert not sop_uids_held(pacs_pair[1], ct_study.uid)


def test_withdrawing_the_agreement_mid_transfer_stops_the_sending(
    region, clean_b, pacs_pair, ct_study, alice, trust_a, trust_b, monkeypatch
):
    monkeypatch.setattr(pipeline, "BATCH_SIZE", 4)
    monkeypatch.setattr(lease, "BEAT_SECONDS", 0)  # every batch looks at the agreement
    real_only_of_study = pipeline.only_of_study
    batches: list[int] = []

    def withdrawn_after_two_batches(transfer, source, study_uid, batch):
        if batch:
            batches.append(len(batch))
            if len(batches) == 3:
                SharingAgreement.objects.update(active=False)
        return real_only_of_study(transfer, source, study_uid, batch)

    monkeypatch.setattr(pipeline, "only_of_study", withdrawn_after_two_batches)
    transfer = push(alice, trust_a, trust_b, ct_study.uid)

    with pytest.raises(engine.AgreementWithdrawn):
        engine.run(transfer.pk, owner="test")

    assert len(sop_uids_held(pacs_pair[1], ct_study.uid)) <= sum(batches[:2]) < len(ct_study.paths)
