"""The DICOMweb endpoints through Django's test client: scope by cookie or token, the audit trail, the
metadata cache, media types, tokens' own limits, and a member of staff's scope at their own trust."""

from __future__ import annotations

import json
from datetime import timedelta

import pydicom
import pytest
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from dicomkit import webindex
from exchange import viewing
from sharing import staging
from sharing.models import DicomWebToken, ShareLink
from tests.helpers import signed_in

pytestmark = pytest.mark.django_db

FRAMES = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'


def uids(link: ShareLink, files) -> tuple[str, str, str]:
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    return link.study_instance_uids[0], str(ds.SeriesInstanceUID), files[0].stem


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_the_link_session_cookie_reads_the_link_as_a_token_does(consultant, bearer, ready_link, ct_files):
    by_token = Client(HTTP_AUTHORIZATION=f"Bearer {bearer}").get("/dicomweb/studies")
    by_cookie = consultant.get("/dicomweb/studies")
    assert by_token.status_code == by_cookie.status_code == 200
    assert json.loads(by_token.content) == json.loads(by_cookie.content)
    assert by_cookie["Cache-Control"] == "no-store" and by_cookie["Content-Type"] == "application/dicom+json"


def test_one_110103_per_series_per_session_however_much_is_read(consultant, bearer, ready_link, ct_files):
    study, series, _ = uids(ready_link.link, ct_files)
    token = Client(HTTP_AUTHORIZATION=f"Bearer {bearer}")
    for _ in range(2):
        assert token.get(f"/dicomweb/studies/{study}/metadata").status_code == 200
        for path in ct_files:
            url = f"/dicomweb/studies/{study}/series/{series}/instances/{path.stem}/frames/1"
            assert token.get(url, HTTP_ACCEPT=FRAMES).status_code == 200
    views = AuditEvent.objects.filter(event_id="110103", actor_ref=f"share_link:{ready_link.link.pk}")
    viewed = views.filter(detail__series_uid=series)
    assert viewed.count() == 1 and viewed.get().trust == "RAA" and viewed.get().actor_type == "share_link"
    assert views.filter(detail__what="dicomweb token").count() == 1


def test_metadata_comes_from_the_index_made_at_staging_not_the_files(consultant, ready_link, ct_files, monkeypatch):
    study, _, _ = uids(ready_link.link, ct_files)
    folder = staging.share_dir(ready_link.link.pk)
    webindex.warm(folder)
    assert (folder / webindex.INDEX_NAME).exists()

    def no_file_reads(*args, **kwargs):
        raise AssertionError("metadata must not read the staged files")

    monkeypatch.setattr(pydicom, "dcmread", no_file_reads)
    monkeypatch.setattr(webindex.pydicom, "dcmread", no_file_reads)
    response = consultant.get(f"/dicomweb/studies/{study}/metadata")
    assert response.status_code == 200 and len(json.loads(response.content)) == len(ct_files)


def test_the_staging_task_leaves_the_index_behind(ready_link, ct_files):
    folder = staging.share_dir(ready_link.link.pk)
    (folder / webindex.INDEX_NAME).unlink(missing_ok=True)
    staging._warm_manifest(folder)
    assert (folder / webindex.INDEX_NAME).exists()


def test_frames_whole_instances_and_rendered_images_negotiate_their_media_type(consultant, ready_link, ct_files):
    study, series, sop = uids(ready_link.link, ct_files)
    base = f"/dicomweb/studies/{study}/series/{series}/instances/{sop}"
    frame = consultant.get(f"{base}/frames/1", HTTP_ACCEPT=FRAMES)
    assert frame["Content-Type"].startswith('multipart/related; type="application/octet-stream"')
    assert pydicom.dcmread(ct_files[0]).PixelData in body(frame)
    assert consultant.get(f"{base}/frames/1", HTTP_ACCEPT="image/gif").status_code == 406
    assert consultant.get(f"{base}/frames/2").status_code == 404  # a single-frame CT
    single = consultant.get(base, HTTP_ACCEPT="application/dicom")
    assert body(single) == (staging.share_dir(ready_link.link.pk) / ct_files[0].name).read_bytes()
    rendered = consultant.get(f"{base}/rendered", HTTP_ACCEPT="image/png")
    assert rendered["Content-Type"] == "image/png" and rendered.content.startswith(b"\x89PNG")
    assert consultant.get(f"/dicomweb/studies/{study}/thumbnail")["Content-Type"] == "image/jpeg"


def test_qido_matching_includefield_and_paging(consultant, ready_link, ct_files):
    study, _series, _ = uids(ready_link.link, ct_files)
    ds = pydicom.dcmread(ct_files[0], stop_before_pixels=True)
    family = str(ds.PatientName).split("^")[0]

    def found(query: str) -> list:
        response = consultant.get(f"/dicomweb/studies?{query}")
        assert response.status_code == 200, response.content
        return json.loads(response.content)

    assert len(found(f"PatientName={family.lower()}*")) == 1  # wildcard, names case-blind
    assert len(found(f"StudyDate={ds.StudyDate}-")) == 1 and not found("StudyDate=-19000101")
    assert len(found(f"ModalitiesInStudy=CT&00100020={ds.PatientID}")) == 1
    assert not found("ModalitiesInStudy=MR")
    assert "00100030" in found("includefield=PatientBirthDate")[0]
    instances = json.loads(consultant.get(f"/dicomweb/studies/{study}/instances?limit=2&offset=1").content)
    assert len(instances) == 2
    assert consultant.get("/dicomweb/studies?NoSuchKeyword=1").status_code == 400


def test_tokens_expire_and_never_outlive_their_link(consultant, bearer, ready_link):
    row = DicomWebToken.objects.get()
    assert row.expires_at <= ready_link.link.expires_at
    DicomWebToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert Client(HTTP_AUTHORIZATION=f"Bearer {bearer}").get("/dicomweb/studies").status_code == 401
    assert bearer not in repr(DicomWebToken.objects.values().get())


def test_a_locked_link_answers_410_to_its_tokens(bearer, ready_link):
    ShareLink.objects.filter(pk=ready_link.link.pk).update(locked_at=timezone.now())
    response = Client(HTTP_AUTHORIZATION=f"Bearer {bearer}").get("/dicomweb/studies")
    assert response.status_code == 410 and b"0020000D" not in response.content


@pytest.fixture
def staff_copy(trust_a, ct_files):
    folder = viewing.view_dir(trust_a, ct_files[0].parent.name)
    folder.mkdir(parents=True)
    for path in ct_files:
        (folder / path.name).write_bytes(path.read_bytes())
    webindex.warm(folder)
    (folder / viewing.READY).write_text(str(len(ct_files)))
    return folder


def test_staff_read_their_own_trusts_copies_and_nobody_elses(alice, bob, staff_copy, ct_files):
    study = ct_files[0].parent.name
    mine = signed_in(alice).get(f"/dicomweb/trusts/RAA/studies/{study}/metadata")
    assert mine.status_code == 200 and len(json.loads(mine.content)) == len(ct_files)
    assert signed_in(bob).get(f"/dicomweb/trusts/RAA/studies/{study}/metadata").status_code == 404
    assert Client().get(f"/dicomweb/trusts/RAA/studies/{study}/metadata").status_code == 401
    # The staff root is not the link's: a signed-in member of staff has no share link scope.
    assert signed_in(alice).get("/dicomweb/studies").status_code == 404
    views = AuditEvent.objects.filter(event_id="110103", trust="RAA", detail__view="dicomweb")
    assert views.count() == 1 and views.get().actor_user_id == alice.pk


def test_open_in_advanced_viewer_copies_once_then_opens_ohif(alice, bob, trust_a, ct_files, monkeypatch):
    study = ct_files[0].parent.name
    queued = []
    monkeypatch.setattr("exchange.tasks.stage_study_view.apply_async", lambda args, **kw: queued.append(args))
    staff_client = signed_in(alice)
    assert b"Copy it and open the viewer" in staff_client.get(f"/trusts/RAA/studies/{study}/advanced-viewer/").content
    page = staff_client.post(f"/trusts/RAA/studies/{study}/advanced-viewer/", follow=True)
    assert b"Copying the study" in page.content and queued == [(trust_a.pk, study)]
    staff_client.post(f"/trusts/RAA/studies/{study}/advanced-viewer/")
    assert len(queued) == 1  # already on its way
    assert signed_in(bob).post(f"/trusts/RAA/studies/{study}/advanced-viewer/").status_code == 404
    folder = viewing.view_dir(trust_a, study)
    (folder / viewing.READY).write_text("6")
    opened = staff_client.get(f"/trusts/RAA/studies/{study}/advanced-viewer/")
    assert opened.status_code == 302 and opened["Location"].startswith("/ohif/trusts/RAA/viewer?StudyInstanceUIDs=")
