"""What the viewer's script calls under the link session: manifest, images, thumbnails, download, opinion."""

from __future__ import annotations

import io
import zipfile

import pydicom
import pytest
from django.core import mail
from PIL import Image

from audit.models import AuditEvent
from sharing import services
from sharing.models import SecondOpinion, ShareLink
from sharing.sr import BASIC_TEXT_SR
from tests.helpers import signed_in
from tests.sharing.conftest import post

pytestmark = pytest.mark.django_db


def test_the_viewer_page_gets_the_url_templates(consultant, ready_link):
    response = consultant.get("/s/")
    ctx = response.context
    assert ctx["manifest_url"] == "/s/manifest.json"
    assert ctx["image_url_template"] == "/s/image/{sop}/{frame}.png"
    assert ctx["thumbnail_url_template"] == "/s/thumb/{sop}.png"
    assert ctx["opinion_url"] == "/s/opinion/" and ctx["download_url"] is None
    assert {"lung", "bone"} <= set(ctx["presets"])


def test_the_manifest_lists_the_staged_series(consultant, ct_files):
    data = consultant.get("/s/manifest.json").json()
    instances = data["studies"][0]["series"][0]["instances"]
    assert {i["sop_instance_uid"] for i in instances} == {p.stem for p in ct_files}


def test_an_image_is_rendered_with_the_requested_window(consultant, ct_files):
    sop = ct_files[2].stem
    narrow = consultant.get(f"/s/image/{sop}/0.png?wc=40&ww=80")
    wide = consultant.get(f"/s/image/{sop}/0.png?wc=500&ww=3000")
    jpeg = consultant.get(f"/s/image/{sop}/0.jpg")
    assert narrow.status_code == wide.status_code == jpeg.status_code == 200
    assert narrow["Content-Type"] == "image/png" and jpeg["Content-Type"] == "image/jpeg"
    assert narrow["Cache-Control"] == "no-store" and narrow["Referrer-Policy"] == "no-referrer"
    assert Image.open(io.BytesIO(narrow.content)).tobytes() != Image.open(io.BytesIO(wide.content)).tobytes()


def test_bad_frames_and_windows_are_400(consultant, ct_files):
    sop = ct_files[0].stem
    assert consultant.get(f"/s/image/{sop}/7.png").status_code == 400
    assert consultant.get(f"/s/image/{sop}/0.png?ww=wide").status_code == 400


def test_a_thumbnail_is_small(consultant, ct_files):
    response = consultant.get(f"/s/thumb/{ct_files[0].stem}.png")
    assert response.status_code == 200 and max(Image.open(io.BytesIO(response.content)).size) <= 128


def test_scrolling_a_series_is_one_audit_event_per_series_per_session(consultant, ready_link, ct_files):
    for path in ct_files:
        assert consultant.get(f"/s/image/{path.stem}/0.png").status_code == 200
    events = AuditEvent.objects.filter(actor_ref=f"share_link:{ready_link.link.pk}", event_id="110103", action="R")
    assert events.count() == 1
    assert events.get().detail["series_uid"] and events.get().study_uids == [ready_link.link.study_instance_uids[0]]


def test_a_series_seen_only_as_a_thumbnail_is_on_the_audit_trail(consultant, ready_link, ct_files):
    events = AuditEvent.objects.filter(actor_ref=f"share_link:{ready_link.link.pk}", event_id="110103", action="R")
    assert consultant.get(f"/s/thumb/{ct_files[0].stem}.png").status_code == 200
    assert events.count() == 1 and events.get().detail["series_uid"]
    assert consultant.get(f"/s/image/{ct_files[1].stem}/0.png").status_code == 200  # same series: no more
    assert events.count() == 1


def test_download_needs_permission(consultant):
    response = consultant.get("/s/download.zip")
    assert response.status_code == 403 and b"did not allow" in response.content


def test_an_allowed_download_is_a_zip_of_the_dicom_and_audited(consultant, ready_link, ct_files):
    ShareLink.objects.filter(pk=ready_link.link.pk).update(allow_download=True)
    assert consultant.get("/s/").context["download_url"] == "/s/download.zip"
    response = consultant.get("/s/download.zip")
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert sorted(archive.namelist()) == sorted(f"DICOM/{p.name}" for p in ct_files)
    assert AuditEvent.objects.filter(actor_ref=f"share_link:{ready_link.link.pk}", detail__what="download").exists()


OPINION = {
    "text": "CT pulmonary angiogram: filling defect in the right lower lobe segmental artery.",
    "conclusion": "Segmental pulmonary embolism.",
    "urgent": "on",
    "consultant_name": "Dr Chidi Okafor",
    "registration_number": "GMC 7654321",
}


def test_an_opinion_is_recorded_emailed_and_written_as_an_sr_of_the_same_study(
    consultant, ready_link, alice, amir, bea, ct_files, django_capture_on_commit_callbacks
):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = post(consultant, "/s/opinion/", OPINION)

    # Redirect after POST: reloading the thank-you page sends nothing again.
    assert response.status_code == 302 and response["Location"] == "/s/opinion/?sent=1"
    assert b"Your opinion has been sent" in consultant.get(response["Location"]).content
    opinion = SecondOpinion.objects.get()
    assert opinion.urgent and opinion.filing_status == "pending"
    # The creator and the trust's imaging managers, nobody of another trust; no patient data in the email.
    assert sorted(mail.outbox[0].to) == ["alice@a.example", "amir@a.example"]
    assert mail.outbox[0].subject.startswith("URGENT") and "RAA12345" not in mail.outbox[0].body
    study_uid = ready_link.link.study_instance_uids[0]
    sr = pydicom.dcmread(next(services.opinion_dir(opinion.pk).glob("*.dcm")))
    source = pydicom.dcmread(ct_files[0], stop_before_pixels=True)
    assert sr.SOPClassUID == BASIC_TEXT_SR and sr.StudyInstanceUID == study_uid
    assert sr.SeriesInstanceUID != source.SeriesInstanceUID
    assert (sr.PatientID, sr.PatientName, sr.PatientBirthDate) == (
        source.PatientID,
        source.PatientName,
        source.PatientBirthDate,
    )
    texts = [item.TextValue for item in sr.ContentSequence if "TextValue" in item]
    assert OPINION["text"] in texts and OPINION["conclusion"] in texts
    assert opinion.sr_uids[study_uid]["sop"] == sr.SOPInstanceUID
    event = AuditEvent.objects.get(event_type="IEP141")
    assert event.actor_ref == f"share_link:{ready_link.link.pk}" and event.study_uids == [study_uid]
    assert AuditEvent.objects.filter(event_id="110103", detail__what="opinion", actor_ref=event.actor_ref).exists()
    # The creator sees it on the link's page.
    page = signed_in(alice).get(f"/share-links/{ready_link.link.pk}/")
    assert OPINION["conclusion"].encode() in page.content


def test_the_same_opinion_sent_twice_is_recorded_filed_and_emailed_once(
    consultant, ready_link, django_capture_on_commit_callbacks
):
    """The thank-you page refreshed, or the button pressed twice: one report, not two."""
    mail.outbox.clear()
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            assert post(consultant, "/s/opinion/", OPINION).status_code == 302
    assert SecondOpinion.objects.filter(link=ready_link.link).count() == 1
    assert len(mail.outbox) == 1 and AuditEvent.objects.filter(event_type="IEP141").count() == 1

    with django_capture_on_commit_callbacks(execute=True):  # an addendum is a new opinion
        post(consultant, "/s/opinion/", {**OPINION, "text": "Addendum: also a small effusion."})
    assert SecondOpinion.objects.filter(link=ready_link.link).count() == 2


def test_an_incomplete_opinion_is_refused_and_nothing_is_recorded(consultant):
    response = post(consultant, "/s/opinion/", {**OPINION, "registration_number": ""})
    assert response.status_code == 400 and not SecondOpinion.objects.exists()
