"""IDs beyond 64 bits are refused with 400, not a 500 from the database (issue #17 item 11)."""

from __future__ import annotations

import pytest

from tests.helpers import api_as, signed_in

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("transfer_id", [2**63, 2**64, 10**30])
def test_bulk_refuses_an_id_beyond_64_bits(alice, transfer_id):
    body = {"action": "cancel", "transfers": [transfer_id]}

    response = api_as(alice).post("/api/v1/transfers/bulk/", body, format="json")

    assert response.status_code == 400 and "transfers" in response.json()


def test_the_largest_64_bit_id_is_simply_not_found(alice):
    body = {"action": "cancel", "transfers": [2**63 - 1]}

    assert api_as(alice).post("/api/v1/transfers/bulk/", body, format="json").status_code == 404


def test_the_operations_page_refuses_an_id_beyond_64_bits(amir):
    response = signed_in(amir).post("/transfers/operations/", {"action": "cancel", "transfers": [str(2**64)]})

    assert response.status_code in (302, 400)  # refused as not a transfer, never a server error
