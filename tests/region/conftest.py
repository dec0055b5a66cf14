"""The region's archive beside trusts A and B: a trust of kind region with a VNA gateway, agreements with both."""

from __future__ import annotations

import pytest

from audit.context import SYSTEM
from directory.models import Gateway, SharingAgreement, Trust
from directory.services import trust_save


@pytest.fixture
def archive(db) -> Trust:
    return trust_save(actor=SYSTEM, ods_code="Y56", name="Northern Region Imaging Archive", kind=Trust.Kind.REGION)


@pytest.fixture
def vna(archive) -> Gateway:
    return Gateway.objects.create(trust=archive, name="VNA", ae_title="REGION_VNA", host="127.0.0.1", port=4260)


@pytest.fixture
def archive_agreements(archive, trust_a, trust_b) -> None:
    for trust in (trust_a, trust_b):
        SharingAgreement.objects.create(trust_a=trust, trust_b=archive, a_to_b=True, b_to_a=True)
