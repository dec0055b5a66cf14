"""Acceptance (issue #16, point 4): a gateway's max_concurrency holds for every kind of work that reaches
its PACS. A transfer from it, a share link's staging from it and a second opinion's filing into it are
started together on a real Celery worker (three pool processes); the PACS itself (the simulated PACS,
which counts the associations open at once) sees no more than the limit. With a limit of three the same
three pieces of work do overlap there, so a peak of one at a limit of one is the limit's doing."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db import transaction

from audit.context import SYSTEM
from dicomkit import GatewayConfig, client_for
from dicomkit.sim.pacs import SimulatedPacs
from dicomkit.sim.synthetic import make_study
from directory.models import Gateway, SharingAgreement
from sharing import services as sharing
from sharing.models import SecondOpinion, ShareLink
from tests.dicom.orthanc import free_port
from tests.sharing.conftest import create_link, stage_files
from tests.transfers.worker import Worker, isolated_broker
from transfers import services as transfers
from transfers.models import Transfer

pytestmark = [pytest.mark.interop, pytest.mark.django_db(transaction=True)]


@dataclass(frozen=True)
class Region:
    pacs_a: SimulatedPacs
    pacs_b: SimulatedPacs
    gateway_a: Gateway
    to_move: list[Path]  # a study the transfer takes from A to B
    to_stage: list[Path]  # a study a new share link copies from A
    staged: list[Path]  # a study already staged for a link, whose opinion is filed into A


@pytest.fixture
def region(tmp_path: Path, trust_a, trust_b, settings) -> Iterator[Region]:
    settings.SPOOL_DIR = tmp_path / "spool"
    settings.SHARE_DIR = settings.SPOOL_DIR / "share"
    trust_b.reconcile_patient_id = trust_b.prefix_accession = trust_b.prefix_study_description = False
    trust_b.save()
    studies = tmp_path / "studies"
    to_move = make_study(studies, modality="CT", n_instances=80, rows=64, columns=64, seed=161)
    to_stage = make_study(studies, modality="CT", n_instances=80, rows=64, columns=64, seed=162)
    staged = make_study(studies, modality="CT", n_instances=3, rows=64, columns=64, seed=163)
    for study in (to_move, to_stage, staged):
        shutil.copytree(study[0].parent, tmp_path / "a" / study[0].parent.name)
    pacs_a = SimulatedPacs("RAA_PACS", free_port(), tmp_path / "a").start()
    pacs_b = SimulatedPacs("RBB_PACS", free_port(), tmp_path / "b").start()
    try:
        gateway_a = Gateway.objects.create(
            trust=trust_a, name="A", ae_title="RAA_PACS", host="127.0.0.1", port=pacs_a.port, retrieve_method="c-get"
        )
        Gateway.objects.create(trust=trust_b, name="B", ae_title="RBB_PACS", host="127.0.0.1", port=pacs_b.port)
        SharingAgreement.objects.create(trust_a=trust_a, trust_b=trust_b)
        yield Region(pacs_a, pacs_b, gateway_a, to_move, to_stage, staged)
    finally:
        pacs_a.stop()
        pacs_b.stop()


@pytest.fixture
def transfer_worker(region: Region, tmp_path: Path, settings) -> Iterator[Worker]:
    """A real worker with three pool processes, sharing the test database and this test's spool."""
    with isolated_broker(tmp_path / "broker") as options:
        extra = {"SPOOL_DIR": str(settings.SPOOL_DIR)}
        w = Worker(tmp_path / "worker", options, env_extra=extra, concurrency=3).start()
        try:
            yield w
        finally:
            w.stop()


def held(pacs: SimulatedPacs, study_uid: str) -> set[str]:
    config = GatewayConfig(ae_title=pacs.ae_title, host="127.0.0.1", port=pacs.port)
    return {i.sop_instance_uid for i in client_for(config, local_ae_title="CHECK").find_instances(study_uid)}


def wait_until(done, worker: Worker, what: str, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}; worker log:\n{worker.log()[-6000:]}"
        time.sleep(0.2)


@pytest.mark.parametrize(("limit", "peak_allowed"), [(1, 1), (3, 3)])
def test_a_transfer_a_staging_and_a_filing_together_keep_to_the_gateways_limit(
    region, transfer_worker, alice, trust_a, trust_b, monkeypatch, limit, peak_allowed
):
    Gateway.objects.filter(pk=region.gateway_a.pk).update(max_concurrency=limit)
    with monkeypatch.context() as quiet:  # the earlier link is staged by hand, not by the worker
        quiet.setattr(sharing, "_enqueue_staging", lambda link_id: None)
        earlier = create_link(alice, trust_a, region.staged[0].parent.name).link
    stage_files(earlier, region.staged)
    region.pacs_a.associations.reset()

    with transaction.atomic():  # all three tasks are enqueued at the same moment, on commit
        transfer = transfers.transfer_create(
            source=trust_a,
            destination=trust_b,
            study_instance_uids=[region.to_move[0].parent.name],
            priority="routine",
            reason="Follow-up at the tertiary centre",
            requested_by=alice,
        )
        link = create_link(alice, trust_a, region.to_stage[0].parent.name).link
        opinion = sharing.opinion_submit(
            link=ShareLink.objects.get(pk=earlier.pk),
            text="No acute abnormality.",
            conclusion="Normal study.",
            urgent=False,
            consultant_name="Dr Chidi Okafor",
            registration_number="GMC 7654321",
            actor=SYSTEM,
        )

    wait_until(lambda: Transfer.objects.get(pk=transfer.pk).completed_at, transfer_worker, "the transfer")
    wait_until(
        lambda: ShareLink.objects.get(pk=link.pk).staging_status in ("ready", "failed"), transfer_worker, "staging"
    )
    wait_until(lambda: SecondOpinion.objects.get(pk=opinion.pk).filing_status != "pending", transfer_worker, "filing")

    transfer.refresh_from_db()
    link.refresh_from_db()
    opinion.refresh_from_db()
    assert transfer.status == "completed", transfer.errors
    assert held(region.pacs_b, region.to_move[0].parent.name) == {p.stem for p in region.to_move}
    assert (link.staging_status, link.instances_staged) == ("ready", len(region.to_stage)), link.staging_error
    assert opinion.filing_status == "filed", opinion.filing_error
    assert opinion.sr_uids[region.staged[0].parent.name]["sop"] in held(region.pacs_a, region.staged[0].parent.name)

    counted = region.pacs_a.associations
    assert counted.total >= 4  # listing, retrieving, the staging's queries and retrieval, the filing
    assert counted.peak <= peak_allowed, f"{counted.peak} associations at once at a PACS that allows {limit}"
    if limit > 1:
        assert counted.peak >= 2, "the three did not run side by side: the test proves nothing at a limit of one"
