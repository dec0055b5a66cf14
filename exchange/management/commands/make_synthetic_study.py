"""manage.py make_synthetic_study: write realistic synthetic DICOM studies for synthetic patients."""

from __future__ import annotations

import random
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dicomkit import nhs
from dicomkit.sim.synthetic import CHARSETS, COMPRESSIONS, MODALITIES, NHS_STORES, SyntheticPatient, make_study


class Command(BaseCommand):
    help = "Write synthetic DICOM studies (valid 999-range NHS numbers) to a folder."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", required=True, help="folder to write <StudyInstanceUID>/<SOP>.dcm into")
        parser.add_argument("--modality", default="CT", choices=MODALITIES)
        parser.add_argument("--instances", type=int, default=None, help="instances per study")
        parser.add_argument("--studies", type=int, default=1, help="how many studies (each a new patient)")
        parser.add_argument("--compress", choices=sorted(COMPRESSIONS), default=None)
        parser.add_argument("--nhs-store", choices=NHS_STORES, default="patientid")
        parser.add_argument("--patient-name", default="", help="Family^Given")
        parser.add_argument("--nhs-number", default="", help="a valid NHS number (default: random 999 range)")
        parser.add_argument("--birth-date", default="", help="YYYYMMDD")
        parser.add_argument("--sex", default="", choices=["", "M", "F", "O"])
        parser.add_argument("--local-issuer", default="RXH", help="issuer of the local MRN (ODS code)")
        parser.add_argument("--charset", default="ISO_IR 100", choices=CHARSETS)
        parser.add_argument("--study-date", default=None, help="YYYYMMDD")
        parser.add_argument("--accession-number", default=None)
        parser.add_argument("--description", default=None)
        parser.add_argument("--rows", type=int, default=None)
        parser.add_argument("--columns", type=int, default=None)
        parser.add_argument("--seed", type=int, default=None)

    def _patient(self, options: dict[str, Any], rng: random.Random) -> SyntheticPatient:
        base = SyntheticPatient.random(rng, local_issuer=options["local_issuer"])
        family, _, given = (options["patient_name"] or f"{base.family_name}^{base.given_name}").partition("^")
        try:
            number = nhs.normalise(options["nhs_number"]) if options["nhs_number"] else base.nhs_number
        except nhs.InvalidNHSNumber as exc:
            raise CommandError(str(exc)) from exc
        return SyntheticPatient(
            nhs_number=number,
            family_name=family,
            given_name=given,
            birth_date=options["birth_date"] or base.birth_date,
            sex=options["sex"] or base.sex,
            local_id=base.local_id,
            local_issuer=options["local_issuer"],
        )

    def handle(self, *args: Any, **options: Any) -> None:
        rng = random.Random(options["seed"])  # noqa: S311 - synthetic test data, not secrets
        for _ in range(max(1, options["studies"])):
            patient = self._patient(options, rng)
            try:
                paths = make_study(
                    options["out"],
                    modality=options["modality"],
                    n_instances=options["instances"],
                    patient=patient,
                    compress=options["compress"],
                    nhs_store=options["nhs_store"],
                    charset=options["charset"],
                    study_date=options["study_date"],
                    accession_number=options["accession_number"],
                    description=options["description"],
                    rows=options["rows"],
                    columns=options["columns"],
                    seed=rng.randrange(2**31),
                )
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(
                f"{len(paths)} {options['modality']} instances for {patient.dicom_name} "
                f"(NHS {nhs.format_nhs(patient.nhs_number)}) in {paths[0].parent}"
            )
