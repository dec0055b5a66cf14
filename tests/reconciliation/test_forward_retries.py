"""Forwarding a resolved study's held instances under the gateway-access layer's one retry policy, between
two real simulated PACS: a transient error backs off with jitter and the forward resumes once the
destination answers; a permanent one fails the held instances at once with its reason (it used to retry
for ever), and the transfer ends saying why."""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from celery.exceptions import Retry

from dicomkit import nhs
from dicomkit.sim.pacs import SimulatedPacs
from dicomkit.sim.synthetic import SyntheticPatient, make_study
from directory.models import Gateway, SharingAgreement
from reconciliation import services as reconciliation
from reconciliation.models import StudyReconciliation
from reconciliation.tasks import forward_held
from tests.dicom.orthanc import free_port
from transfers import engine, services
from transfers.models import InstanceState, Status, Transfer

pytestmark = pytest.mark.django_db


@dataclass
class Held:
    item: StudyReconciliation
    destination: Gateway
    pacs_b: SimulatedPacs
    sop_uids: set[str]


@pytest.fixture
def held(tmp_path: Path, trust_a, trust_b, alice, bea, settings, monkeypatch) -> Iterator[Held]:
    """A study sent from A to B that B could not match (no local patient with its NHS number), resolved
    by B's imaging manager: its forward is what the tests run."""
    settings.SPOOL_DIR = tmp_path / "spool"
    patient = SyntheticPatient(
        nhs_number=nhs.synthetic(random.Random(931)),
        family_name="Jones",
        given_name="Aoife",
        birth_date="19800203",
        sex="F",
        local_id="RAA0000931",
        local_issuer="RAA_MRN",
    )
    paths = make_study(tmp_path / "study", modality="CT", n_instances=4, patient=patient, rows=64, columns=64, seed=931)
    shutil.copytree(paths[0].parent, tmp_path / "a" / paths[0].parent.name)
    pacs_a = SimulatedPacs("RAA_PACS", free_port(), tmp_path / "a").start()
    pacs_b = SimulatedPacs("RBB_PACS", free_port(), tmp_path / "b").start()
    try:
        Gateway.objects.create(
            trust=trust_a, name="A", ae_title="RAA_PACS", host="127.0.0.1", port=pacs_a.port, retrieve_method="c-get"
        )
        destination = Gateway.objects.create(
            trust=trust_b, name="B", ae_title="RBB_PACS", host="127.0.0.1", port=pacs_b.port
        )
        SharingAgreement.objects.create(trust_a=trust_a, trust_b=trust_b)
        transfer = services.transfer_create(
            source=trust_a,
            destination=trust_b,
            study_instance_uids=[paths[0].parent.name],
            priority="routine",
            reason="Follow-up",
            requested_by=alice,
        )
        assert engine.run(transfer.pk, owner="test") == Status.AWAITING_RECONCILIATION
        monkeypatch.setattr(reconciliation, "_enqueue_forward", lambda item_id, queue: None)
        item = reconciliation.reconciliation_resolve(
            item=StudyReconciliation.objects.get(), user=bea, patient_id="RBB0000931", issuer="RBB_MRN"
        )
        yield Held(item, destination, pacs_b, {p.stem for p in paths})
    finally:
        pacs_a.stop()
        pacs_b.stop()


def states(transfer_id: int) -> set[str]:
    return set(Transfer.objects.get(pk=transfer_id).instances.values_list("state", flat=True))


def test_a_forward_backs_off_on_a_transient_error_and_resumes_when_the_pacs_answers(held, settings):
    Gateway.objects.filter(pk=held.destination.pk).update(port=free_port())  # B is down for a while

    with pytest.raises(Retry) as retried:
        forward_held.apply((held.item.pk,), throw=True)

    base = settings.GATEWAY_RETRY_BASE_DELAY
    assert base / 2 <= retried.value.when <= base
    held.item.refresh_from_db()
    assert "refused the connection" in held.item.forward_error
    assert states(held.item.transfer_id) == {InstanceState.HELD}  # nothing lost: still held, still on disk

    Gateway.objects.filter(pk=held.destination.pk).update(port=held.pacs_b.port)
    state = retried.value.sig.kwargs["gateway_retry"]
    assert forward_held.apply((held.item.pk,), {"gateway_retry": state}, throw=True).get() == 4

    transfer = Transfer.objects.get(pk=held.item.transfer_id)
    assert transfer.status == Status.COMPLETED and states(transfer.pk) == {InstanceState.STORED}
    assert StudyReconciliation.objects.get(pk=held.item.pk).forward_error == ""


def test_a_forward_refused_for_good_fails_at_once_with_the_reason(held):
    Gateway.objects.filter(pk=held.destination.pk).update(ae_title="NOT_ITS_AE")  # B rejects the association

    assert forward_held.apply((held.item.pk,), throw=True).get() == "failed"  # no Retry

    transfer = Transfer.objects.get(pk=held.item.transfer_id)
    assert transfer.status == Status.FAILED and states(transfer.pk) == {InstanceState.FAILED}
    reasons = {e["error"] for e in transfer.errors if "sop_instance_uid" in e}
    assert len(reasons) == 1 and "refused the association" in reasons.pop()
    assert {e["sop_instance_uid"] for e in transfer.errors if "sop_instance_uid" in e} == held.sop_uids
    assert "refused the association" in StudyReconciliation.objects.get(pk=held.item.pk).forward_error


def test_a_forward_that_keeps_failing_gives_up_once_the_window_has_passed(held, settings):
    settings.GATEWAY_RETRY_WINDOW = 0
    Gateway.objects.filter(pk=held.destination.pk).update(port=free_port())

    assert forward_held.apply((held.item.pk,), throw=True).get() == "failed"

    transfer = Transfer.objects.get(pk=held.item.transfer_id)
    assert transfer.status == Status.FAILED
    assert all(i.last_error.startswith("not forwarded: Gave up after 1 try") for i in transfer.instances.all())
