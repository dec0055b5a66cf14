"""Request fixtures: bob (clinician, RBB) asks RAA; amir (imaging manager) and alice (clinician) answer at
RAA; carol (clinician, RCC) has no part in it. Candidate studies are written as RAA's PACS would list them."""

from __future__ import annotations

import datetime as dt

import pytest

from accounts.models import User
from accounts.roles import Role
from dicomkit import nhs
from directory.models import Gateway, Trust
from pulls.models import PullRequest
from tests.helpers import grant, make_user
from transfers import tasks

NHS_NUMBER = "9434765919"
STUDY_1 = "1.2.826.0.1.3680043.8.498.20"
STUDY_2 = "1.2.826.0.1.3680043.8.498.21"


@pytest.fixture
def enqueued(monkeypatch) -> list[tuple[int, str]]:
    """Transfers the approval queued (the engine itself is tested with real workers elsewhere)."""
    calls: list[tuple[int, str]] = []
    monkeypatch.setattr(tasks, "enqueue", lambda transfer_id, queue: calls.append((transfer_id, queue)))
    return calls


@pytest.fixture
def trust_c(db) -> Trust:
    return Trust.objects.create(ods_code="RCC", name="Gamma Community Hospital")


@pytest.fixture
def carol(trust_c) -> User:
    return grant(make_user("carol@c.example"), trust_c, Role.CLINICIAN)


@pytest.fixture
def cget_gateway_a(trust_a) -> Gateway:
    return Gateway.objects.create(
        trust=trust_a, name="Edge", ae_title="ALPHA_EDGE", host="127.0.0.1", port=4250, retrieve_method="c-get"
    )


def candidate(uid: str, **overrides) -> dict:
    return {
        "study_instance_uid": uid,
        "patient_name": "Jones^Aoife",
        "patient_id": "RAA1234567",
        "nhs_number": NHS_NUMBER,
        "birth_date": "1980-02-03",
        "sex": "F",
        "study_date": "2026-11-20",
        "modalities": ["CT"],
        "description": "CT head",
        "accession_number": "ACC1",
        "series_count": 1,
        "instance_count": 20,
        "mismatches": [],
        **overrides,
    }


@pytest.fixture
def pending(bob, trust_a, trust_b, agreement) -> PullRequest:
    """A request from RBB to RAA, as request_create leaves it after RAA's PACS listed two studies."""
    assert nhs.is_valid(NHS_NUMBER)
    return PullRequest.objects.create(
        requesting_trust=trust_b,
        source_trust=trust_a,
        requested_by=bob,
        nhs_number=NHS_NUMBER,
        family_name="Jones",
        given_name="Aoife",
        birth_date=dt.date(1980, 2, 3),
        sex="F",
        priority="urgent",
        reason="Head injury, transferred for neurosurgery",
        candidates=[candidate(STUDY_1), candidate(STUDY_2)],
    )


# Real Orthanc servers (trust A's and B's PACS) for the tests that query a PACS, from tests/transfers.
from tests.transfers.conftest import pacs_pair  # noqa: E402, F401
