"""Staging and second-opinion filing under the gateway-access layer's one retry policy, against a real
simulated PACS: a transient error backs off with jitter and the work resumes once the PACS answers; a
permanent one fails at once with its reason."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery.exceptions import Retry

from audit.context import SYSTEM
from dicomkit import GatewayConfig, client_for
from dicomkit.sim.pacs import SimulatedPacs
from directory.models import Gateway, GatewaySlot
from sharing import services, staging, tasks
from sharing.models import SecondOpinion, ShareLink
from tests.dicom.orthanc import free_port

from .conftest import create_link

pytestmark = pytest.mark.django_db


@pytest.fixture
def port() -> int:
    return free_port()


def start_pacs(root: Path, port: int, files: list[Path]) -> SimulatedPacs:
    study = root / files[0].parent.name
    study.mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.copy(path, study / path.name)
    return SimulatedPacs("RAA_PACS", port, root).start()


@pytest.fixture
def pacs_later(tmp_path: Path, port: int, ct_files) -> Iterator[list[SimulatedPacs]]:
    """The PACS at `port`, started when a test says so (until then nothing listens: a transient error)."""
    started: list[SimulatedPacs] = []
    yield started
    for pacs in started:
        pacs.stop()


@pytest.fixture
def at_port(source_gateway: Gateway, port: int) -> Gateway:
    Gateway.objects.filter(pk=source_gateway.pk).update(ae_title="RAA_PACS", port=port)
    source_gateway.refresh_from_db()
    return source_gateway


def backoff_bounds(settings, failures: int = 1) -> tuple[float, float]:
    delay = min(settings.GATEWAY_RETRY_MAX_DELAY, settings.GATEWAY_RETRY_BASE_DELAY * 2 ** (failures - 1))
    return delay / 2, delay


def held_by(pacs: SimulatedPacs, study_uid: str) -> set[str]:
    client = client_for(GatewayConfig(ae_title=pacs.ae_title, host="127.0.0.1", port=pacs.port), local_ae_title="T")
    return {i.sop_instance_uid for i in client.find_instances(study_uid)}


# --- staging --------------------------------------------------------------------------------------------


def test_staging_backs_off_on_a_transient_error_and_resumes_when_the_pacs_answers(
    alice, trust_a, at_port, ct_files, tmp_path, port, pacs_later, settings
):
    link = create_link(alice, trust_a, ct_files[0].parent.name).link

    with pytest.raises(Retry) as retried:
        tasks.stage_share_link.apply((link.pk,), throw=True)

    low, high = backoff_bounds(settings)
    assert low <= retried.value.when <= high
    link.refresh_from_db()
    assert link.staging_status == "queued" and link.staging_error.endswith("Trying again.")
    assert "refused the connection" in link.staging_error
    assert not GatewaySlot.objects.exclude(holder="").exists()  # the slot went back while it waits

    pacs_later.append(start_pacs(tmp_path / "pacs", port, ct_files))
    state = retried.value.sig.kwargs["gateway_retry"]
    assert tasks.stage_share_link.apply((link.pk,), {"gateway_retry": state}, throw=True).get() == "ready"

    link.refresh_from_db()
    assert (link.staging_status, link.staging_error) == ("ready", "")
    assert {p.stem for p in staging.share_dir(link.pk).glob("*.dcm")} == {p.stem for p in ct_files}


def test_a_second_transient_error_backs_off_longer(alice, trust_a, at_port, ct_files, settings):
    link = create_link(alice, trust_a, ct_files[0].parent.name).link
    with pytest.raises(Retry) as first:
        tasks.stage_share_link.apply((link.pk,), throw=True)
    state = first.value.sig.kwargs["gateway_retry"]

    with pytest.raises(Retry) as second:
        tasks.stage_share_link.apply((link.pk,), {"gateway_retry": state}, throw=True)

    low, high = backoff_bounds(settings, failures=2)
    assert low <= second.value.when <= high
    assert second.value.sig.kwargs["gateway_retry"] == {"since": state["since"], "failures": 2}


def test_staging_fails_at_once_on_a_permanent_error(alice, trust_a, at_port, ct_files, tmp_path, port, pacs_later):
    pacs_later.append(start_pacs(tmp_path / "pacs", port, ct_files))
    Gateway.objects.filter(pk=at_port.pk).update(ae_title="NOT_ITS_AE")  # the PACS rejects the association
    link = create_link(alice, trust_a, ct_files[0].parent.name).link

    assert tasks.stage_share_link.apply((link.pk,), throw=True).get() == "failed"  # no Retry

    link = ShareLink.objects.get(pk=link.pk)
    assert link.staging_status == "failed"
    assert "refused the association" in link.staging_error and "NOT_ITS_AE" in link.staging_error


def test_staging_that_keeps_failing_gives_up_after_the_window_with_the_last_error(
    alice, trust_a, at_port, ct_files, settings
):
    settings.GATEWAY_RETRY_WINDOW = 0
    link = create_link(alice, trust_a, ct_files[0].parent.name).link

    assert tasks.stage_share_link.apply((link.pk,), throw=True).get() == "failed"

    link.refresh_from_db()
    assert link.staging_status == "failed"
    assert link.staging_error.startswith("Gave up after 1 try over 0 s; last error:")
    assert "refused the connection" in link.staging_error


# --- filing the second opinion --------------------------------------------------------------------------


@pytest.fixture
def opinion(ready_link, at_port) -> SecondOpinion:
    return services.opinion_submit(
        link=ShareLink.objects.get(pk=ready_link.link.pk),
        text="Filling defect in a right lower lobe segmental artery.",
        conclusion="Segmental pulmonary embolism.",
        urgent=False,
        consultant_name="Dr Chidi Okafor",
        registration_number="GMC 7654321",
        actor=SYSTEM,
    )


def test_filing_backs_off_on_a_transient_error_and_resumes_when_the_pacs_answers(
    opinion, ct_files, tmp_path, port, pacs_later, settings
):
    with pytest.raises(Retry) as retried:
        tasks.file_second_opinion.apply((opinion.pk,), throw=True)

    low, high = backoff_bounds(settings)
    assert low <= retried.value.when <= high
    opinion.refresh_from_db()
    assert opinion.filing_status == "pending" and "refused the connection" in opinion.filing_error

    pacs = start_pacs(tmp_path / "pacs", port, ct_files)
    pacs_later.append(pacs)
    state = retried.value.sig.kwargs["gateway_retry"]
    assert tasks.file_second_opinion.apply((opinion.pk,), {"gateway_retry": state}, throw=True).get() == "filed"

    opinion.refresh_from_db()
    assert (opinion.filing_status, opinion.filing_error) == ("filed", "")
    sr = opinion.sr_uids[ct_files[0].parent.name]["sop"]
    assert sr in held_by(pacs, ct_files[0].parent.name)
    # The register of copies: the SR filed at the source is a copy held there.
    from copies.models import Copy

    assert list(Copy.objects.filter(sop_instance_uid=sr).values_list("via", "state")) == [("sr_filing", "held")]


def test_filing_fails_at_once_on_a_permanent_error(opinion, at_port, ct_files, tmp_path, port, pacs_later):
    pacs_later.append(start_pacs(tmp_path / "pacs", port, ct_files))
    Gateway.objects.filter(pk=at_port.pk).update(ae_title="NOT_ITS_AE")

    assert tasks.file_second_opinion.apply((opinion.pk,), throw=True).get() == "failed"  # no Retry

    opinion.refresh_from_db()
    assert opinion.filing_status == "failed" and "refused the association" in opinion.filing_error
    assert services.opinion_dir(opinion.pk).exists()  # the SR is kept for a person to file by hand
