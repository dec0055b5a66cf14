"""Issue #19: staff view their own trust's images through the consultants' renderer, each view audited
(110103); thumbnails beside studies. Against a real (simulated) PACS answering C-FIND and C-GET."""

from __future__ import annotations

import json

import pytest

from audit.models import AuditEvent
from exchange import tasks, viewing
from tests.helpers import signed_in

from .conftest import NHS_RHYS

pytestmark = pytest.mark.django_db


@pytest.fixture
def viewable(settings, tmp_path, sim_gateway, monkeypatch):
    """The copy is made at once, as the worker would, instead of through a broker."""
    settings.SPOOL_DIR = tmp_path / "spool"
    sim_gateway.retrieve_method = "c-get"
    sim_gateway.save()
    monkeypatch.setattr(tasks.stage_study_view, "apply_async", lambda args, **kw: viewing.stage(*args))
    return sim_gateway


def test_a_clinician_views_a_study_of_their_trust_and_each_series_is_audited(alice, viewable, studies):
    client = signed_in(alice)
    base = f"/trusts/RAA/studies/{studies.mr_uid}/view/"
    page = client.get(base)
    html = page.content.decode()
    assert page.status_code == 200 and 'id="viewer"' in html and "DAVIES, Rhys" in html
    assert f'data-manifest-url="{base}manifest.json"' in html and f'data-status-url="{base}status"' in html
    manifest = json.loads(client.get(f"{base}manifest.json").content)
    series = manifest["studies"][0]["series"]
    first = [i["sop_instance_uid"] for i in series[0]["instances"]]
    assert sum(len(s["instances"]) for s in series) == 5
    for sop in first + first:
        image = client.get(f"{base}image/{sop}/0.png")
        assert image.status_code == 200 and image["Content-Type"] == "image/png"
    views = AuditEvent.objects.filter(event_id="110103", detail__view="viewer")
    assert views.count() == 1  # one series, once per session however many images
    event = views.get()
    assert event.detail["series_uid"] == series[0]["series_instance_uid"]
    assert event.actor_label == alice.email and event.nhs_number == NHS_RHYS and event.study_uids == [studies.mr_uid]


def test_someone_of_another_trust_cannot_view_or_get_a_thumbnail(bob, viewable, studies):
    client = signed_in(bob)
    assert client.get(f"/trusts/RAA/studies/{studies.mr_uid}/view/").status_code == 404
    assert client.get(f"/trusts/RAA/studies/{studies.mr_uid}/thumbnail.png").status_code == 404


def test_an_ig_officer_of_the_trust_may_not_view_images(ada, viewable, studies):
    assert signed_in(ada).get(f"/trusts/RAA/studies/{studies.mr_uid}/view/").status_code == 403


def test_search_results_have_a_thumbnail_of_each_study_and_fetching_one_is_audited(alice, viewable, studies):
    client = signed_in(alice)
    html = client.get("/trusts/RAA/studies/", {"nhs_number": NHS_RHYS, "search": "1"}).content.decode()
    src = f"/trusts/RAA/studies/{studies.mr_uid}/thumbnail.png"
    assert f'src="{src}"' in html
    thumb = client.get(src)
    assert thumb.status_code == 200 and thumb.content.startswith(b"\x89PNG")
    assert AuditEvent.objects.filter(event_id="110103", detail__view="thumbnail", study_uids=[studies.mr_uid]).exists()
    assert client.get(src).content == thumb.content  # kept: the PACS is not asked twice


def test_the_page_waiting_for_the_copy_reloads_without_flooding_the_audit_trail(
    alice, settings, tmp_path, sim_gateway, studies, monkeypatch
):
    settings.SPOOL_DIR = tmp_path / "spool"
    monkeypatch.setattr(tasks.stage_study_view, "apply_async", lambda args, **kw: None)  # a busy worker
    client = signed_in(alice)
    for _ in range(3):  # the page reloads itself every 2 s until the images are here
        page = client.get(f"/trusts/RAA/studies/{studies.mr_uid}/view/").content.decode()
        assert 'http-equiv="refresh"' in page and "Fetching the images" in page
    assert AuditEvent.objects.filter(event_id="110112", detail__lookup="view images").count() == 1
    assert not AuditEvent.objects.filter(event_id="110103").exists()  # nothing seen yet
