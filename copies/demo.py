"""The demo's procedure code mapping (synthetic NICIP-like codes and SNOMED CT-format identifiers invented
for the demo, each with a valid check digit) for every receiving demo trust, and one agreement that removes
private elements. Nothing here is a real code."""

from __future__ import annotations

from pathlib import Path

from django.db import transaction

from directory.models import SharingAgreement, Trust

from . import codes_csv
from .models import ProcedureMapping

DEMO_TABLE = Path(__file__).with_name("demo_procedure_mapping.csv")
PRIVATE_REMOVED = ("NV0", "R0B")  # the treatment centre's proprietary elements stay at home


@transaction.atomic
def seed_procedure_mappings() -> int:
    rows = codes_csv.parse(DEMO_TABLE.read_bytes())
    trusts = list(Trust.objects.filter(ods_code__in=["R0A", "R0B", "R0C", "NV0"]))
    for trust in trusts:
        ProcedureMapping.objects.filter(trust=trust).delete()
        ProcedureMapping.objects.bulk_create(
            [
                ProcedureMapping(
                    trust=trust,
                    sender_scheme=r.sender_scheme,
                    sender_code=r.sender_code,
                    description_pattern=r.description_pattern,
                    nicip_code=r.nicip_code,
                    nicip_meaning=r.nicip_meaning,
                    snomed_code=r.snomed_code,
                    snomed_meaning=r.snomed_meaning,
                )
                for r in rows
            ]
        )
    one, other = PRIVATE_REMOVED
    agreement = SharingAgreement.between(*Trust.objects.filter(ods_code__in=[one, other]).order_by("ods_code"))
    if agreement is not None:
        agreement.private_elements = "remove"
        agreement.save(update_fields=["private_elements"])
    return len(trusts)
