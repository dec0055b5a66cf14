"""The demo's images: written once, some patients at two trusts, found through a demo PACS."""

from __future__ import annotations

from pathlib import Path

from django.test import override_settings

from dicomkit import GatewayConfig, StudyQuery, client_for
from dicomkit.nhs import is_valid
from dicomkit.sim.pacs import SimulatedPacs
from exchange.demo import MARKER, demo_nhs_numbers, generate_demo_studies, pacs_dir
from tests.dicom.orthanc import free_port


def test_demo_studies_are_written_once_and_found_at_two_trusts(tmp_path: Path) -> None:
    with override_settings(VAR_DIR=tmp_path):
        assert generate_demo_studies() == {"R0A": 3, "R0B": 2, "R0C": 2, "NV0": 1}
        assert generate_demo_studies() == {}  # idempotent: a second run writes nothing
        assert (pacs_dir("R0A") / MARKER).exists()
        folders = {ods: pacs_dir(ods) for ods in ("R0A", "R0B")}
    numbers = demo_nhs_numbers()
    assert all(is_valid(n) for n in numbers) and len(set(numbers)) == len(numbers)
    found = {}
    for ods, folder in folders.items():
        with SimulatedPacs(f"DEMO_{ods}", free_port(), folder) as pacs:
            config = GatewayConfig(ae_title=pacs.ae_title, host="127.0.0.1", port=pacs.port, label=ods)
            found[ods] = client_for(config, local_ae_title="PORTAL").find_studies(StudyQuery(nhs_number=numbers[0]))
    # The same patient under different local MRNs: NHS number as PatientID at R0A, an Other ID at R0B.
    (at_a,), (at_b,) = found["R0A"], found["R0B"]
    assert at_a.nhs_number == at_b.nhs_number == numbers[0]
    assert at_a.patient_id == numbers[0] and at_b.patient_id.startswith("R0B")
    assert at_a.instance_count == 20 and at_a.modalities == ("CT",)
