"""The staff navigation offers each person the pages their roles let them use, and no others."""

from __future__ import annotations

import pytest

from tests.helpers import signed_in

pytestmark = pytest.mark.django_db

REQUESTS = 'href="/requests/"'
RECONCILIATION = 'href="/reconciliation/"'
OPERATIONS = 'href="/transfers/operations/"'


def nav(user) -> str:
    return signed_in(user).get("/transfers/").content.decode()


def test_a_clinician_is_offered_requests_but_not_the_managers_pages(alice):
    page = nav(alice)
    assert REQUESTS in page and RECONCILIATION not in page and OPERATIONS not in page


def test_an_imaging_manager_is_offered_requests_reconciliation_and_operations(amir):
    page = nav(amir)
    assert REQUESTS in page and RECONCILIATION in page and OPERATIONS in page


def test_an_ig_officer_is_offered_none_of_them(ada):
    page = nav(ada)
    assert REQUESTS not in page and RECONCILIATION not in page and OPERATIONS not in page
