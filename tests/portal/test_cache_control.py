"""Nothing the portal renders may be kept by a browser or proxy cache; static files may."""

from __future__ import annotations

import pytest

from tests.helpers import api_as, signed_in

pytestmark = pytest.mark.django_db


def test_staff_pages_are_not_stored(alice):
    response = signed_in(alice).get("/trusts/RAA/")

    assert response.status_code == 200 and response["Cache-Control"] == "no-store"


def test_api_answers_to_a_token_are_not_stored(alice):
    response = api_as(alice, token=True).get("/api/v1/transfers/")

    assert response.status_code == 200 and response["Cache-Control"] == "no-store"


def test_api_answers_to_a_session_are_not_stored(alice):
    response = api_as(alice).get("/api/v1/me/")

    assert response.status_code == 200 and response["Cache-Control"] == "no-store"


def test_error_answers_are_not_stored_either(alice):
    response = api_as(alice).get("/api/v1/transfers/999/")

    assert response.status_code == 404 and response["Cache-Control"] == "no-store"


def test_static_files_keep_their_own_caching(client):
    response = client.get("/static/css/portal.css")

    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")
