"""A NUL (or another control character) anywhere in a request is refused with 400, never a 500.

PostgreSQL cannot hold NUL in text: before the refusal, every endpoint that looked a value up or saved
it answered 500 (DataError).
"""

from __future__ import annotations

import pytest

from directory.models import SharingAgreement
from tests.helpers import api_as, signed_in
from transfers.models import Transfer

pytestmark = pytest.mark.django_db

NUL = "\x00"

POSTS = {
    "transfers/": {
        "source_trust": "RAA" + NUL,
        "destination_trust": "RBB",
        "study_instance_uids": ["1.2.3"],
        "priority": "urgent",
        "reason": "x",
    },
    "agreements/": {"trust_a": "RAA" + NUL, "trust_b": "RBB", "a_to_b": True, "b_to_a": True},
    "memberships/": {"user": "alice@a.example", "trust": "RAA" + NUL, "role": "clinician"},
    "share-links/": {
        "trust": "RAA" + NUL,
        "study_instance_uids": ["1.2.3"],
        "recipient_email": "c@example.org",
        "recipient_name": "C",
        "expires_in_hours": 24,
        "allow_download": False,
        "purpose": "second opinion",
    },
    "requests/": {
        "source_trust": "RBB" + NUL,
        "nhs_number": "9434765919",
        "family_name": "Smith",
        "given_name": "Ann",
        "birth_date": "1970-01-01",
        "sex": "F",
        "priority": "routine",
        "reason": "follow-up",
    },
}


@pytest.mark.parametrize("path", list(POSTS))
def test_a_nul_in_a_posted_field_is_refused_with_400(path, rita, alice, trust_b):
    response = api_as(rita).post(f"/api/v1/{path}", POSTS[path], format="json")

    assert response.status_code == 400
    assert "Control characters" in response.json()["detail"]
    assert not Transfer.objects.exists() and not SharingAgreement.objects.exists()


@pytest.mark.parametrize("path", ["trusts/R0A%00/", "trusts/R0A%00/studies/", "transfers/?status=a%00b"])
def test_a_nul_in_an_api_address_or_query_is_refused_with_400(path, alice):
    response = api_as(alice).get(f"/api/v1/{path}")

    assert response.status_code == 400 and "Control characters" in response.json()["detail"]


@pytest.mark.parametrize("path", ["/trusts/R0A%00/", "/audit/users/?user=%00", "/trusts/RAA/?q=a%1Fb"])
def test_a_nul_in_a_page_address_or_query_is_refused_with_400(path, rita):
    response = signed_in(rita).get(path)

    assert response.status_code == 400 and b"Control characters" in response.content


def test_other_control_characters_in_a_json_field_are_refused(rita, alice, trust_b):
    body = {**POSTS["memberships/"], "trust": "RAA", "role": "clinician\x1b[31m"}

    response = api_as(rita).post("/api/v1/memberships/", body, format="json")

    assert response.status_code == 400 and "field 'role'" in response.json()["detail"]


def test_a_nul_in_a_form_field_is_refused(rita, trust_a):
    response = signed_in(rita).post("/trusts/RAA/", {"name": "Alpha" + NUL})

    assert response.status_code == 400 and b"field 'name'" in response.content


def test_line_breaks_and_tabs_in_a_text_field_are_still_accepted(rita):
    body = {"email": "new@a.example", "full_name": "Ann\tSmith\r\nof Alpha"}

    response = api_as(rita).post("/api/v1/users/", body, format="json")

    assert response.status_code == 201, response.json()
