"""The OpenAPI schema: behind sign-in, built once, and documenting the error answers (issue #17 item 12)."""

from __future__ import annotations

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

from portal.schema_views import CachedSchemaView
from tests.helpers import api_as

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_kept_schema():
    CachedSchemaView._schemas.clear()
    yield
    CachedSchemaView._schemas.clear()


def schema_of(user) -> dict:
    response = api_as(user).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def test_the_schema_is_not_served_to_anonymous_callers():
    response = Client().get("/api/schema/")

    assert response.status_code == 401


def test_the_docs_page_sends_an_anonymous_browser_to_sign_in():
    response = Client().get("/api/docs/")

    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_schema_is_built_once_and_then_served_from_memory(alice, bob, monkeypatch):
    calls = []
    original = SchemaGenerator.get_schema
    monkeypatch.setattr(SchemaGenerator, "get_schema", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))

    first, second = schema_of(alice), schema_of(bob)

    assert first == second and len(calls) == 1


def test_every_operation_documents_its_error_answers(alice):
    paths = schema_of(alice)["paths"]

    for path, operations in paths.items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert {"400", "401", "403"} <= codes, (method, path)
            if "{" in path:
                assert "404" in codes, (method, path)
            if method in ("post", "put", "patch"):
                assert "415" in codes, (method, path)


def test_a_garbage_request_status_filter_is_refused(alice):
    response = api_as(alice).get("/api/v1/requests/?status=garbage")

    assert response.status_code == 400 and "status" in response.json()


def test_request_and_transfer_filters_still_take_their_values(alice):
    assert api_as(alice).get("/api/v1/requests/?status=pending,approved&direction=incoming").status_code == 200
    assert api_as(alice).get("/api/v1/transfers/?status=queued,failed&direction=outgoing").status_code == 200
    assert api_as(alice).get("/api/v1/transfers/?direction=sideways").status_code == 400
