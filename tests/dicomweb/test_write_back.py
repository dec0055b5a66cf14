"""Issue #21 acceptance, write-back: the consultant's SR sent by STOW-RS (dicomweb-client, through the
link's bearer token) lands in the review area; the link's creator reads it on the link's page and files it
with one action; a real worker stores it in the source Orthanc, where it is queried back. An SR about
another patient is refused with its reason, and a link without the write scope takes nothing."""

from __future__ import annotations

import copy
import io
import json
from datetime import datetime

import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from django.utils import timezone
from requests import HTTPError

from audit.models import AuditEvent
from sharing import sr, staging, writeback
from sharing.models import WriteBack
from tests.helpers import signed_in
from tests.sharing.conftest import create_link, stage_files
from tests.sharing.test_staging_worker import wait_for
from tests.transfers.peers import orthanc_gateway

from .conftest import mint_token

pytestmark = [pytest.mark.interop, pytest.mark.django_db(transaction=True)]


def consultant_sr(link) -> pydicom.Dataset:
    """What the consultant's viewer makes: an SR about the shared study, its patient module copied."""
    source = pydicom.dcmread(sorted(staging.share_dir(link.pk).glob("*.dcm"))[0], stop_before_pixels=True)
    opinion = sr.Opinion(
        text="Filling defect in a right lower lobe segmental artery.",
        conclusion="Segmental pulmonary embolism.",
        urgent=True,
        consultant_name="Dr Chidi Okafor",
        registration_number="GMC 7654321",
        written_at=datetime(2026, 12, 7, 10, 0, tzinfo=timezone.get_current_timezone()),
    )
    ds = sr.basic_text_sr(source, opinion)
    path = sr.write(ds, staging.share_dir(link.pk).parent / f"{ds.SOPInstanceUID}.sr")  # gives it its file meta
    path.unlink()
    return ds


@pytest.fixture
def writable(alice, trust_a, source_pacs, pacs_study, django_capture_on_commit_callbacks, client):
    orthanc_gateway(trust_a, source_pacs)
    created = create_link(alice, trust_a, pacs_study.uid, allow_write_back=True)
    stage_files(created.link, pacs_study.paths)
    return created


def bearer_client(live_server, created, django_capture_on_commit_callbacks) -> DICOMwebClient:
    from tests.sharing.conftest import emailed_code, opened, post

    with django_capture_on_commit_callbacks(execute=True):
        browser = opened(created)
    assert post(browser, "/s/code/", {"code": emailed_code()}).status_code == 302
    token = mint_token(browser)
    return DICOMwebClient(url=f"{live_server.url}/dicomweb", headers={"Authorization": f"Bearer {token}"})


def test_a_consultants_sr_is_reviewed_filed_and_found_in_the_source_pacs(
    live_server,
    writable,
    share_worker,
    source_pacs,
    alice,
    django_capture_on_commit_callbacks,
):
    client = bearer_client(live_server, writable, django_capture_on_commit_callbacks)
    report = consultant_sr(writable.link)

    answer = client.store_instances([report])
    assert answer.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == report.SOPInstanceUID
    assert "FailedSOPSequence" not in answer
    held = WriteBack.objects.get()
    assert (
        held.status == "held" and held.kind == "sr" and held.study_instance_uid == writable.link.study_instance_uids[0]
    )
    assert not source_pacs.find("Instance", {"SOPInstanceUID": report.SOPInstanceUID})  # nothing filed yet

    creator = signed_in(alice)
    page = creator.get(f"/share-links/{writable.link.pk}/").content.decode()
    assert "Segmental pulmonary embolism." in page and "Filling defect" in page
    creator.post(f"/share-links/{writable.link.pk}/write-backs/{held.pk}/file/")

    filed = wait_for(
        lambda: WriteBack.objects.filter(pk=held.pk, status__in=("filed", "failed")).first(), share_worker, "filing"
    )
    assert filed.status == "filed", filed.filing_error
    found = source_pacs.find("Instance", {"SOPInstanceUID": report.SOPInstanceUID})
    assert len(found) == 1
    stored = pydicom.dcmread(io.BytesIO(source_pacs.instance_file(found[0])))
    assert stored.StudyInstanceUID == writable.link.study_instance_uids[0] and stored.Modality == "SR"
    events = AuditEvent.objects.filter(detail__write_back=held.pk)
    assert {e.event_id for e in events} == {"110107", "110104"}
    assert events.filter(event_id="110107", actor_user=alice).exists()  # the approval, by the creator
    source_pacs.session().delete(f"{source_pacs.url}/instances/{found[0]}", timeout=30)


def test_an_sr_about_another_patient_is_refused_with_its_reason(
    live_server,
    writable,
    source_pacs,
    django_capture_on_commit_callbacks,
):
    client = bearer_client(live_server, writable, django_capture_on_commit_callbacks)
    other = consultant_sr(writable.link)
    other.PatientID, other.PatientName = "RAA99999", "Other^Patient"
    kept = consultant_sr(writable.link)

    answer = client.store_instances([other, kept])  # 202: one stored, one refused
    (failed,) = answer.FailedSOPSequence
    assert failed.ReferencedSOPInstanceUID == other.SOPInstanceUID
    assert failed.FailureReason == writeback.NOT_AUTHORIZED
    assert answer.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == kept.SOPInstanceUID
    assert list(WriteBack.objects.values_list("sop_instance_uid", flat=True)) == [kept.SOPInstanceUID]
    refusal = AuditEvent.objects.get(event_id="110107", outcome=4)
    assert "another patient" in refusal.reason

    with pytest.raises(HTTPError) as raised:
        client.store_instances([copy.deepcopy(other)])  # refused alone: 409
    assert raised.value.response.status_code == 409
    assert "another patient" in raised.value.response.headers["Warning"]
    assert json.loads(raised.value.response.content)["00081198"]["Value"][0]["00081197"]["Value"] == [0x0124]


def test_a_link_without_the_write_scope_takes_nothing(
    live_server, alice, trust_a, source_pacs, pacs_study, django_capture_on_commit_callbacks
):
    orthanc_gateway(trust_a, source_pacs)
    created = create_link(alice, trust_a, pacs_study.uid)
    stage_files(created.link, pacs_study.paths)
    client = bearer_client(live_server, created, django_capture_on_commit_callbacks)
    with pytest.raises(HTTPError) as raised:
        client.store_instances([consultant_sr(created.link)])
    assert raised.value.response.status_code == 403
    assert not WriteBack.objects.exists()
