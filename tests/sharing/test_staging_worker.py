"""End to end through a real Celery worker and a real Orthanc as the source PACS: staging a link's studies
into the portal's storage, and filing the consultant's opinion back into that PACS as a Basic Text SR."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from django.conf import settings
from django.test import Client

from dicomkit.sim.synthetic import SyntheticPatient, make_study
from sharing import services, staging
from sharing.models import SecondOpinion, ShareLink
from sharing.sr import BASIC_TEXT_SR
from tests.dicom.orthanc import OrthancProcess
from tests.helpers import api_as
from tests.transfers.peers import Study, orthanc_gateway, start_orthanc
from tests.transfers.worker import Worker, isolated_broker

from .conftest import emailed_code, post

pytestmark = [pytest.mark.interop, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="session")
def source_pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancProcess]:
    server = start_orthanc(tmp_path_factory.mktemp("share-pacs"), "SHARE_PACS")
    yield server
    server.remove()


@pytest.fixture(scope="session")
def pacs_study(tmp_path_factory: pytest.TempPathFactory, source_pacs: OrthancProcess) -> Study:
    paths = make_study(
        tmp_path_factory.mktemp("share-pacs-study"), modality="CT", n_instances=12, rows=128, columns=128, seed=62
    )
    source_pacs.upload(paths)
    return Study(paths[0].parent.name, paths)


@pytest.fixture
def share_worker(transactional_db, tmp_path: Path) -> Iterator[Worker]:
    """A real worker process sharing the test database, a private broker and this test's spool."""
    with isolated_broker(tmp_path / "broker") as options:
        worker = Worker(tmp_path / "worker", options, env_extra={"SPOOL_DIR": str(settings.SPOOL_DIR)}).start()
        try:
            yield worker
        finally:
            worker.stop()


def wait_for(predicate, worker: Worker, what: str, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; worker log:\n{worker.log()[-6000:]}")


def create_via_api(user, study_uid: str) -> dict:
    body = {
        "trust": "RAA",
        "study_instance_uids": [study_uid],
        "recipient_email": "consultant@elsewhere.example",
        "recipient_name": "Dr Chidi Okafor",
        "purpose": "Second opinion on a possible pulmonary embolism",
        "expires_in_hours": 24,
    }
    response = api_as(user).post("/api/v1/share-links/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def ready(link_id: int) -> ShareLink | None:
    link = ShareLink.objects.get(pk=link_id)
    return link if link.staging_status in ("ready", "failed") else None


def test_a_link_is_staged_from_the_source_pacs_by_a_worker(share_worker, source_pacs, pacs_study, alice, trust_a):
    orthanc_gateway(trust_a, source_pacs)
    created = create_via_api(alice, pacs_study.uid)
    token_path = "/s/" + created["url"].rsplit("/s/", 1)[1]
    # Until staging completes the link asks the consultant to come back.
    if ShareLink.objects.get(pk=created["id"]).staging_status != "ready":
        assert Client().get(token_path).status_code in (200, 503)

    link = wait_for(lambda: ready(created["id"]), share_worker, "staging")

    assert link.staging_status == "ready", (link.staging_error, share_worker.log()[-3000:])
    staged = {p.stem for p in staging.share_dir(link.pk).glob("*.dcm")}
    assert staged == pacs_study.sop_uids
    assert link.instances_total == link.instances_staged == len(pacs_study.paths)
    assert link.patient_id  # noted from the source for the audit trail
    body = api_as(alice).get(f"/api/v1/share-links/{link.pk}/").json()
    assert body["state"] == "active" and body["staging"]["instances_staged"] == 12
    assert Client().get(token_path).status_code == 200


def test_the_opinion_is_filed_into_the_source_pacs_as_a_basic_text_sr(
    share_worker, source_pacs, pacs_study, alice, trust_a
):
    orthanc_gateway(trust_a, source_pacs)
    created = create_via_api(alice, pacs_study.uid)
    wait_for(lambda: ready(created["id"]), share_worker, "staging")
    consultant = Client()
    assert consultant.post("/s/" + created["url"].rsplit("/s/", 1)[1]).status_code == 302
    assert post(consultant, "/s/code/", {"code": emailed_code()}).status_code == 302

    response = post(
        consultant,
        "/s/opinion/",
        {
            "text": "Filling defect in a right lower lobe segmental artery.",
            "conclusion": "Segmental pulmonary embolism.",
            "consultant_name": "Dr Chidi Okafor",
            "registration_number": "GMC 7654321",
        },
    )
    assert response.status_code == 302  # redirect after POST: a reload sends nothing again

    opinion = wait_for(
        lambda: SecondOpinion.objects.filter(filing_status__in=("filed", "failed")).first(), share_worker, "filing"
    )
    assert opinion.filing_status == "filed", opinion.filing_error
    assert not services.opinion_dir(opinion.pk).exists()  # the spool's copy goes once the PACS has it
    sop = opinion.sr_uids[pacs_study.uid]["sop"]
    found = source_pacs.find("Instance", {"SOPInstanceUID": sop})
    assert len(found) == 1
    stored = pydicom.dcmread(__import__("io").BytesIO(source_pacs.instance_file(found[0])))
    assert stored.SOPClassUID == BASIC_TEXT_SR and stored.StudyInstanceUID == pacs_study.uid
    assert stored.Modality == "SR"
    assert any(getattr(i, "TextValue", "") == "Segmental pulmonary embolism." for i in stored.ContentSequence)
    source_pacs.session().delete(f"{source_pacs.url}/instances/{found[0]}", timeout=30)


def test_a_study_the_source_does_not_hold_fails_staging_with_a_reason(share_worker, source_pacs, alice, trust_a):
    orthanc_gateway(trust_a, source_pacs)
    created = create_via_api(alice, "1.2.826.0.1.3680043.8.498.99999")

    link = wait_for(lambda: ready(created["id"]), share_worker, "staging to give up")

    assert link.staging_status == "failed" and "holds no instances" in link.staging_error
    assert api_as(alice).get(f"/api/v1/share-links/{link.pk}/").json()["state"] == "failed"
    assert Client().get("/s/" + created["url"].rsplit("/s/", 1)[1]).status_code == 410


def test_a_link_over_two_patients_studies_is_refused_at_staging(
    share_worker, source_pacs, pacs_study, alice, trust_a, tmp_path
):
    """Every view of a link is audited against its one patient: a second patient's study has no place in it."""
    orthanc_gateway(trust_a, source_pacs)
    other = SyntheticPatient(nhs_number="9434765919", family_name="OTHER", given_name="Patient", local_id="RXH777")
    paths = make_study(tmp_path / "other", modality="CT", n_instances=2, rows=64, columns=64, patient=other, seed=63)
    source_pacs.upload(paths)
    body = {
        "trust": "RAA",
        "study_instance_uids": [pacs_study.uid, paths[0].parent.name],
        "recipient_email": "consultant@elsewhere.example",
        "recipient_name": "Dr Chidi Okafor",
        "purpose": "Second opinion",
        "expires_in_hours": 24,
    }
    created = api_as(alice).post("/api/v1/share-links/", body, format="json").json()

    link = wait_for(lambda: ready(created["id"]), share_worker, "staging to refuse the link")

    assert link.staging_status == "failed" and "2 different patients" in link.staging_error, link.staging_error
    assert not list(staging.share_dir(link.pk).glob("*.dcm"))  # nothing of either patient was copied
    assert Client().get("/s/" + created["url"].rsplit("/s/", 1)[1]).status_code == 410
