"""Log lines are structured, carry the request ID, and keep patient identifiers out."""

from __future__ import annotations

import json
import logging

import pytest
from django.test import Client


@pytest.mark.django_db
def test_request_log_lines_are_json_with_the_request_id_and_no_query_string(caplog, alice):
    from tests.helpers import signed_in

    client = signed_in(alice)
    with caplog.at_level(logging.INFO):
        client.get("/?nhs_number=9434765919", HTTP_X_REQUEST_ID="req-abc-123456")

    formatter = logging.getLogger().handlers[0].formatter  # the portal's own structured formatter
    lines = [json.loads(formatter.format(record)) for record in caplog.records]
    request_line = next(line for line in lines if line.get("event") == "request")
    assert request_line["request_id"] == "req-abc-123456"
    assert "9434765919" not in json.dumps(lines)


@pytest.mark.django_db
def test_a_malformed_incoming_request_id_is_replaced():
    response = Client().get("/healthz", HTTP_X_REQUEST_ID="bad id\nwith newline")

    assert response["X-Request-ID"] != "bad id\nwith newline"
    assert len(response["X-Request-ID"]) == 32
