"""The share-links API (SPEC section 7): create (URL once), list, revoke, opinions; who may do what."""

from __future__ import annotations

import pytest
from django.core import mail

from audit.models import AuditEvent
from sharing.models import SecondOpinion, ShareLink
from tests.helpers import api_as, signed_in

pytestmark = pytest.mark.django_db

STUDY = "1.2.826.0.1.3680043.8.498.600"


def body(**overrides) -> dict:
    return {
        "trust": "RAA",
        "study_instance_uids": [STUDY],
        "recipient_email": "consultant@elsewhere.example",
        "recipient_name": "Dr Chidi Okafor",
        "purpose": "Second opinion on a possible pulmonary embolism",
        **overrides,
    }


def create(user, django_capture_on_commit_callbacks, **overrides):
    with django_capture_on_commit_callbacks(execute=True):
        return api_as(user).post("/api/v1/share-links/", body(**overrides), format="json")


def test_a_clinician_creates_a_link_and_sees_its_url_once(alice, source_gateway, django_capture_on_commit_callbacks):
    response = create(alice, django_capture_on_commit_callbacks)

    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["url"].startswith("http://127.0.0.1:8000/s/") and response["Cache-Control"] == "no-store"
    assert data["state"] == "staging" and data["allow_download"] is False
    link = ShareLink.objects.get(pk=data["id"])
    assert 71.9 < (link.expires_at - link.created_at).total_seconds() / 3600 <= 72  # the default, 72 h
    # The recipient got the link; it is never shown again.
    assert [m.to for m in mail.outbox] == [["consultant@elsewhere.example"]] and data["url"] in mail.outbox[0].body
    listed = api_as(alice).get("/api/v1/share-links/").json()["results"]
    assert [item["id"] for item in listed] == [link.pk] and "url" not in listed[0]
    assert "url" not in api_as(alice).get(f"/api/v1/share-links/{link.pk}/").json()
    event = AuditEvent.objects.get(event_id="110106", event_type="IEP131")
    assert event.reason == body()["purpose"] and event.study_uids == [STUDY]


def test_expiry_beyond_the_trusts_maximum_is_refused(
    alice, trust_a, source_gateway, django_capture_on_commit_callbacks
):
    trust_a.share_link_max_hours = 48
    trust_a.save()
    response = create(alice, django_capture_on_commit_callbacks, expires_in_hours=49)
    assert response.status_code == 400 and "expires_in_hours" in response.json()
    assert not ShareLink.objects.exists() and not mail.outbox


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("study_instance_uids", ["not a uid"]),
        ("recipient_email", "nobody"),
        ("purpose", ""),
        ("study_instance_uids", []),
    ],
)
def test_bad_input_is_refused_and_nothing_is_created(
    alice, source_gateway, field, value, django_capture_on_commit_callbacks
):
    response = create(alice, django_capture_on_commit_callbacks, **{field: value})
    assert response.status_code == 400 and field in response.json()
    assert not ShareLink.objects.exists() and not AuditEvent.objects.filter(event_type="IEP131").exists()


def test_an_imaging_manager_may_not_create_but_sees_and_revokes(
    alice, amir, source_gateway, django_capture_on_commit_callbacks
):
    assert create(amir, django_capture_on_commit_callbacks).status_code == 403
    link_id = create(alice, django_capture_on_commit_callbacks).json()["id"]
    assert [i["id"] for i in api_as(amir).get("/api/v1/share-links/").json()["results"]] == [link_id]

    with django_capture_on_commit_callbacks(execute=True):
        response = api_as(amir).post(f"/api/v1/share-links/{link_id}/revoke/")

    assert response.status_code == 200 and response.json()["state"] == "revoked"
    assert AuditEvent.objects.filter(event_type="IEP134", actor_user=amir).count() == 1


def test_another_trusts_users_get_404(alice, bob, bea, source_gateway, django_capture_on_commit_callbacks):
    link_id = create(alice, django_capture_on_commit_callbacks).json()["id"]
    for user in (bob, bea):
        client = api_as(user)
        assert client.get("/api/v1/share-links/").json()["results"] == []
        assert client.get(f"/api/v1/share-links/{link_id}/").status_code == 404
        assert client.post(f"/api/v1/share-links/{link_id}/revoke/").status_code == 404
        assert client.get(f"/api/v1/share-links/{link_id}/opinions/").status_code == 404
    assert ShareLink.objects.get(pk=link_id).revoked_at is None


def test_a_clinician_of_another_trust_cannot_share_this_trusts_studies(
    bob, source_gateway, django_capture_on_commit_callbacks
):
    assert create(bob, django_capture_on_commit_callbacks).status_code == 403
    assert not ShareLink.objects.exists()


def test_opinions_are_listed_for_the_creator(alice, ready_link):
    SecondOpinion.objects.create(
        link=ready_link.link, text="No PE.", conclusion="Normal", consultant_name="Dr O", registration_number="GMC1"
    )
    data = api_as(alice).get(f"/api/v1/share-links/{ready_link.link.pk}/opinions/").json()
    assert [(o["conclusion"], o["filing_status"]) for o in data] == [("Normal", "pending")]


def test_a_creator_who_has_left_the_trust_no_longer_sees_or_manages_the_link(alice, ready_link):
    link = ready_link.link
    SecondOpinion.objects.create(
        link=link, text="No PE.", conclusion="Normal", consultant_name="Dr O", registration_number="GMC1"
    )
    alice.memberships.filter(trust=link.trust).delete()

    api = api_as(alice)
    assert api.get("/api/v1/share-links/").json()["count"] == 0
    assert api.get(f"/api/v1/share-links/{link.pk}/opinions/").status_code == 404
    assert api.post(f"/api/v1/share-links/{link.pk}/revoke/").status_code == 404
    assert signed_in(alice).get(f"/share-links/{link.pk}/").status_code == 404
    link.refresh_from_db()
    assert link.revoked_at is None


def test_a_trust_without_a_retrieving_gateway_gets_a_clear_error(alice, django_capture_on_commit_callbacks):
    response = create(alice, django_capture_on_commit_callbacks)
    assert response.status_code == 400 and "gateway" in str(response.json())


def test_the_creator_reads_every_access_through_the_api(consultant, ready_link, alice, bob, ct_files):
    consultant.get(f"/s/image/{ct_files[0].stem}/0.png")
    data = api_as(alice).get(f"/api/v1/share-links/{ready_link.link.pk}/accesses/").json()
    assert [row["what"] for row in data] == ["open", "code", "series view"]
    assert data[-1]["series_uid"] and data[0]["client_ip"] == "127.0.0.1"
    assert api_as(bob).get(f"/api/v1/share-links/{ready_link.link.pk}/accesses/").status_code == 404
