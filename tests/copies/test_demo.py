"""The demo ships a synthetic procedure code table for every demo trust (seed_demo)."""

from __future__ import annotations

import pytest

from copies.demo import DEMO_TABLE, seed_procedure_mappings
from copies.models import ProcedureMapping
from directory.demo import seed_region
from directory.models import SharingAgreement

pytestmark = pytest.mark.django_db


def test_the_demo_table_is_valid_and_loaded_for_each_demo_trust(settings):
    settings.DEBUG = True
    seed_region()
    assert seed_procedure_mappings() == 4
    assert (
        ProcedureMapping.objects.filter(trust__ods_code="R0B", description_pattern="CT*HEAD*").get().nicip_code
        == "XCTHE"
    )
    assert "synthetic" in DEMO_TABLE.read_text()
    agreement = SharingAgreement.objects.get(trust_a__ods_code="NV0", trust_b__ods_code="R0B")
    assert agreement.private_elements == "remove"
