"""Staff pages for share links: the form, the once-shown URL, the link's page with staging progress."""

from __future__ import annotations

import pytest

from sharing.models import ShareLink
from tests.helpers import signed_in

pytestmark = pytest.mark.django_db

STUDY = "1.2.826.0.1.3680043.8.498.700"


def form(**overrides) -> dict:
    return {
        "study_instance_uids": STUDY,
        "recipient_name": "Dr Chidi Okafor",
        "recipient_email": "consultant@elsewhere.example",
        "purpose": "Second opinion, please",
        "expires_in_hours": "72",
        **overrides,
    }


def test_the_form_creates_a_link_and_shows_its_url_once(alice, source_gateway, django_capture_on_commit_callbacks):
    client = signed_in(alice)
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post("/trusts/RAA/share-links/new/", form())
    link = ShareLink.objects.get()
    # Redirect after POST: the "created" page reloaded used to submit the form again.
    assert created.status_code == 302 and created["Location"] == f"/share-links/{link.pk}/created/"
    response = client.get(created["Location"])
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    assert b'id="share-url"' in response.content and b"/s/" in response.content
    again = client.get(created["Location"])
    assert b'id="share-url"' not in again.content and b'id="shown-once"' in again.content
    assert ShareLink.objects.count() == 1
    page = client.get(f"/share-links/{link.pk}/")
    assert b"/s/" not in page.content.split(b'id="maincontent">')[1]  # never shown again
    # While staging, the page refreshes itself and shows progress.
    assert b'http-equiv="refresh"' in page.content and b"0 / 0" in page.content


def test_an_expiry_beyond_the_trusts_maximum_is_refused_on_the_form(alice, trust_a, source_gateway):
    trust_a.share_link_max_hours = 24
    trust_a.save()
    response = signed_in(alice).post("/trusts/RAA/share-links/new/", form(expires_in_hours="25"))
    assert response.status_code == 400 and b"24" in response.content
    assert not ShareLink.objects.exists()


def test_a_clinician_of_another_trust_gets_404_for_the_form(bob, source_gateway):
    assert signed_in(bob).get("/trusts/RAA/share-links/new/").status_code == 404


def test_an_imaging_manager_may_not_create_links(amir, source_gateway):
    assert signed_in(amir).get("/trusts/RAA/share-links/new/").status_code == 403


def test_the_list_shows_links_to_creator_and_imaging_manager_only(ready_link, alice, amir, bob):
    for user, expected in ((alice, True), (amir, True), (bob, False)):
        content = signed_in(user).get("/share-links/").content
        assert (f'href="/share-links/{ready_link.link.pk}/"'.encode() in content) is expected


def test_the_admin_shows_a_regional_administrator_no_links_nor_opinions_they_could_not_see_elsewhere(
    ready_link, rita, alice
):
    from sharing.models import SecondOpinion

    opinion = SecondOpinion.objects.create(
        link=ready_link.link, text="No PE.", conclusion="Normal", consultant_name="Dr O", registration_number="GMC1"
    )
    admin = signed_in(rita)
    assert ready_link.link.recipient_email not in admin.get("/admin/sharing/sharelink/").content.decode()
    assert admin.get(f"/admin/sharing/sharelink/{ready_link.link.pk}/change/").status_code == 302  # "not found"
    assert admin.get(f"/admin/sharing/secondopinion/{opinion.pk}/change/").status_code == 302
