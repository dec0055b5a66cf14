"""Demo images: synthetic studies for each demo trust's simulated PACS (see directory/demo.py).

Some patients are at two trusts under different local MRNs, with the NHS number stored as PatientID
at one and among the Other Patient IDs at the other, as real PACS do. Everything is invented.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from dicomkit import nhs
from dicomkit.sim.synthetic import SyntheticPatient, make_study
from directory.demo import REGIONAL_ARCHIVE, SIM_PACS_BASE_PORT, TRUSTS

DEMO_STUDIES_VERSION = 1
MARKER = "demo-studies.json"  # .json: the simulated PACS does not try to index it


@dataclass(frozen=True)
class DemoPatient:
    family_name: str
    given_name: str
    birth_date: str
    sex: str


PATIENTS = (
    DemoPatient("Ó Súilleabháin", "Siobhán", "19800214", "F"),
    DemoPatient("Davies", "Rhys", "19541103", "M"),
    DemoPatient("Khan", "Priya", "19921230", "F"),
    DemoPatient("Evans", "Gareth", "19670719", "M"),
    DemoPatient("Øvergård", "Zoë", "20010502", "F"),
)

# (ODS code, patient index, modality, where the NHS number is stored, study date)
STUDIES = (
    ("R0A", 0, "CT", "patientid", "20260110"),
    ("R0A", 1, "MR", "other-ids", "20250921"),
    ("R0A", 2, "CR", "other-ids", "20260301"),
    ("R0B", 0, "CR", "other-ids", "20240617"),
    ("R0B", 3, "CT", "patientid", "20251128"),
    ("R0C", 1, "CT", "patientid", "20230412"),
    ("R0C", 4, "MR", "other-ids", "20260201"),
    ("NV0", 3, "MR", "other-ids", "20250505"),
)
SIZES = {
    "CT": {"n_instances": 20, "rows": 256, "columns": 256},
    "MR": {"n_instances": 12},
    "CR": {"rows": 1024, "columns": 860},
}


def pacs_dir(ods_code: str) -> Path:
    return Path(settings.VAR_DIR) / "pacs" / ods_code


def sim_pacs_address(ods_code: str) -> tuple[str, int]:
    """AE title and port of a demo trust's simulated PACS, as seed_region registers its gateway."""
    for index, spec in enumerate((*TRUSTS, REGIONAL_ARCHIVE)):
        if spec.ods_code == ods_code:
            return spec.ae_title, SIM_PACS_BASE_PORT + index
    raise KeyError(f"{ods_code} is not a demo trust")


def demo_nhs_numbers() -> list[str]:
    rng = random.Random(20260101)  # noqa: S311 - synthetic data: the same numbers on every machine
    return [nhs.synthetic(rng) for _ in PATIENTS]


def generate_demo_studies() -> dict[str, int]:
    """Write the demo studies into var/pacs/<ODS>; trusts already generated are skipped. {ODS: studies}."""
    numbers = demo_nhs_numbers()
    written: dict[str, int] = {}
    for spec in TRUSTS:
        folder = pacs_dir(spec.ods_code)
        marker = folder / MARKER
        if marker.exists() and json.loads(marker.read_text()).get("version") == DEMO_STUDIES_VERSION:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        count = 0
        for seq, (ods, index, modality, nhs_store, study_date) in enumerate(STUDIES):
            if ods != spec.ods_code:
                continue
            person = PATIENTS[index]
            patient = SyntheticPatient(
                nhs_number=numbers[index],
                family_name=person.family_name,
                given_name=person.given_name,
                birth_date=person.birth_date,
                sex=person.sex,
                local_id=f"{ods}{100000 + 17 * index + 3}",  # a different MRN at every trust
                local_issuer=f"{ods}_MRN",
            )
            make_study(
                folder,
                modality=modality,
                patient=patient,
                nhs_store=nhs_store,
                charset="ISO_IR 192",
                study_date=study_date,
                seed=1000 + seq,
                **SIZES[modality],
            )
            count += 1
        marker.write_text(json.dumps({"version": DEMO_STUDIES_VERSION, "studies": count}))
        written[spec.ods_code] = count
    return written


def demo_patients_at(ods_code: str) -> list[dict[str, str]]:
    """The synthetic patients whose studies a demo trust's PACS holds: name and NHS number."""
    numbers = demo_nhs_numbers()
    held = dict.fromkeys(index for ods, index, *_ in STUDIES if ods == ods_code)
    return [
        {"name": f"{PATIENTS[i].family_name.upper()}, {PATIENTS[i].given_name}", "nhs_number": numbers[i]} for i in held
    ]
