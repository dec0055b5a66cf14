"""Issue #19: share-link defects a new user met. Each test names the one it guards against."""

from __future__ import annotations

import json

import pytest

from audit.models import AuditEvent
from sharing import services
from sharing.models import SecondOpinion
from tests.helpers import signed_in

from .conftest import post
from .test_viewer_endpoints import OPINION

pytestmark = pytest.mark.django_db


def test_an_open_viewer_learns_that_the_link_was_revoked(consultant, ready_link, alice, ct_files):
    """A viewer open when the link was revoked kept showing the old image with the wrong label: it now asks
    /s/status, which says why, and viewer.js shows that instead of any image."""
    assert consultant.get("/s/status").status_code == 200
    page = consultant.get("/s/").content.decode()
    assert 'data-status-url="/s/status"' in page
    services.share_link_revoke(link=ready_link.link, user=alice)
    refused = consultant.get("/s/status")
    assert refused.status_code == 410
    assert json.loads(refused.content) == {
        "ok": False,
        "title": "Link no longer available",
        "message": "The person who shared these images has withdrawn the link.",
    }
    assert consultant.get(f"/s/image/{ct_files[1].stem}/0.png").status_code == 410


def test_the_opinion_page_after_sending_shows_what_was_sent(consultant, ready_link):
    """`/s/opinion/` after sending showed an empty form, as if nothing had been sent."""
    post(consultant, "/s/opinion/", OPINION)
    page = consultant.get("/s/opinion/").content.decode()
    assert "Your opinion has been sent" in page and OPINION["conclusion"] in page
    assert 'id="opinion-form"' not in page and "Add a further opinion" in page
    assert 'id="opinion-form"' in consultant.get("/s/opinion/?another=1").content.decode()


def test_the_access_log_lists_one_submission_once(consultant, ready_link, alice):
    """The access log listed one submission twice."""
    post(consultant, "/s/opinion/", OPINION)
    assert SecondOpinion.objects.count() == 1
    assert AuditEvent.objects.filter(detail__opinion__isnull=False).count() == 2  # the trail keeps both records
    rows = signed_in(alice).get(f"/share-links/{ready_link.link.pk}/").content.decode().split('id="accesses"')[1]
    assert rows.count("Sent a second opinion") == 1


def test_the_form_offers_the_patients_studies_as_ticks_not_a_uid_textarea(alice, source_gateway):
    """The share-link form had raw UIDs in a textarea."""
    html = signed_in(alice).get("/trusts/RAA/share-links/new/?study=1.2.3.4").content.decode()
    assert "<textarea" in html  # the question, and nothing else
    assert 'name="study_instance_uids" type="checkbox" value="1.2.3.4"' in html
    assert html.count("<textarea") == 1


def test_the_list_names_the_patient_and_offers_a_new_link(ready_link, alice):
    """The list had no "New link" button, and named no patient or study."""
    ready_link.link.studies = [
        {
            "study_instance_uid": ready_link.link.study_instance_uids[0],
            "patient_name": "Khan^Priya",
            "nhs_number": "9434765919",
            "description": "CT chest",
            "study_date": "2026-03-01",
        }
    ]
    ready_link.link.save()
    html = signed_in(alice).get("/share-links/").content.decode()
    assert 'id="new-link"' in html and "KHAN, Priya" in html and "943 476 5919" in html and "CT chest" in html
