"""A real exchange between two Orthanc servers, then its manifests: the KOS references exactly the
instances the destination holds (checked against Orthanc's own index and read by dcmtk's dsrdump), and
the FHIR search answers the study to the holder and nothing to another trust."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle
from pydicom import dcmread
from pydicom.filebase import DicomBytesIO

from dicomkit.kos import KOS_SOP_CLASS, referenced_instances
from directory.models import SharingAgreement, Trust
from manifests.models import StudyManifest
from manifests.services import document_source_uid, manifests_for_transfer
from tests.helpers import api_as, require_tool
from tests.transfers.peers import orthanc_gateway, sop_uids_held
from tests.transfers.test_worker import push, wait_for
from transfers import engine, services
from transfers.models import Status

pytestmark = [pytest.mark.interop]


@pytest.fixture
def trust_b(trust_b: Trust) -> Trust:
    """Studies move as they are (reconciliation on arrival has its own tests)."""
    trust_b.reconcile_patient_id = trust_b.prefix_accession = trust_b.prefix_study_description = False
    trust_b.save()
    return trust_b


@pytest.fixture
def region(pacs_pair, trust_a, trust_b, settings, tmp_path):
    settings.SPOOL_DIR = tmp_path / "spool"
    SharingAgreement.objects.create(trust_a=trust_a, trust_b=trust_b)
    a, b = pacs_pair
    b_gateway = orthanc_gateway(trust_b, b)
    return orthanc_gateway(trust_a, a), b_gateway


@pytest.fixture
def exchanged(region, pacs_pair, ct_study, alice, trust_a, trust_b) -> StudyManifest:
    pacs_pair[1].delete_study(ct_study.uid)
    transfer = services.transfer_create(
        source=trust_a,
        destination=trust_b,
        study_instance_uids=[ct_study.uid],
        priority="urgent",
        reason="Follow-up at the tertiary centre",
        requested_by=alice,
    )
    assert engine.run(transfer.pk, owner="test") == Status.COMPLETED
    (manifest,) = manifests_for_transfer(transfer.pk)
    return manifest


@pytest.mark.django_db
def test_the_kos_references_every_instance_the_destination_holds(exchanged, pacs_pair, ct_study, tmp_path):
    kos = dcmread(DicomBytesIO(bytes(exchanged.kos)))

    assert kos.SOPClassUID == KOS_SOP_CLASS and kos.Modality == "KO"
    assert kos.StudyInstanceUID == ct_study.uid
    assert kos.ConceptNameCodeSequence[0].CodeValue == "113030"  # Manifest
    held = sop_uids_held(pacs_pair[1], ct_study.uid)
    classes = {p.stem: str(dcmread(p, stop_before_pixels=True).SOPClassUID) for p in ct_study.paths}
    assert referenced_instances(kos) == {uid: classes[uid] for uid in held}
    assert len(held) == len(ct_study.paths) == len(kos.ContentSequence)
    (series,) = kos.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
    assert series.RetrieveAETitle == pacs_pair[1].aet
    assert series.RetrieveLocationUID == document_source_uid()
    assert series.RetrieveURL.endswith(f"/dicomweb/trusts/RBB/studies/{ct_study.uid}/series/{series.SeriesInstanceUID}")


@pytest.mark.django_db
def test_dcmtk_reads_the_kos_as_a_valid_key_object_selection_document(exchanged, tmp_path):
    dsrdump = require_tool("dsrdump", "dcmtk's dsrdump")
    path = Path(tmp_path / "manifest.dcm")
    path.write_bytes(bytes(exchanged.kos))

    result = subprocess.run([dsrdump, "-Ee", path], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert "Key Object Selection Document" in result.stdout and "Manifest" in result.stdout
    assert "error" not in result.stderr.lower(), result.stderr


@pytest.mark.django_db
def test_the_operators_command_makes_what_is_missing(exchanged):
    from django.core.management import call_command

    transfer_id = exchanged.transfer_id
    StudyManifest.objects.all().delete()
    call_command("make_manifests", "--now", "--transfer", str(transfer_id))
    (again,) = StudyManifest.objects.filter(transfer_id=transfer_id)
    assert referenced_instances(dcmread(DicomBytesIO(bytes(again.kos)))) == referenced_instances(
        dcmread(DicomBytesIO(bytes(exchanged.kos)))
    )


@pytest.mark.django_db
def test_a_second_call_makes_no_second_manifest(exchanged):
    assert manifests_for_transfer(exchanged.transfer_id) == [exchanged]
    assert StudyManifest.objects.count() == 1


@pytest.mark.django_db
def test_the_fhir_search_answers_the_exchanged_patient_to_the_holder_only(exchanged, pacs_pair, ct_study, bob, trust_a):
    from accounts.roles import Role
    from tests.helpers import grant, make_user

    url = f"/fhir/ImagingStudy?patient.identifier=https://fhir.nhs.uk/Id/nhs-number|{exchanged.nhs_number}"
    assert len(exchanged.nhs_number) == 10
    bundle = Bundle.model_validate_json(api_as(bob, token=True).get(url).content)
    (entry,) = bundle.entry
    uids = {i.uid for s in entry.resource.series for i in s.instance}
    assert uids == set(sop_uids_held(pacs_pair[1], ct_study.uid))

    gamma = Trust.objects.create(ods_code="RCC", name="Gamma Community Hospital")
    carol = grant(make_user("carol@c.example"), gamma, Role.CLINICIAN)
    empty = Bundle.model_validate_json(api_as(carol, token=True).get(url).content)
    assert empty.total == 0 and not empty.entry


@pytest.mark.django_db(transaction=True)
def test_a_transfer_ending_in_a_worker_gets_its_manifest_made(transfer_worker, region, pacs_pair, ct_study, alice):
    pacs_pair[1].delete_study(ct_study.uid)
    transfer_id = push(alice, ct_study.uid)

    manifest = wait_for(
        lambda: StudyManifest.objects.filter(transfer_id=transfer_id).first(),
        transfer_worker,
        what="the manifest task to run after the transfer",
    )

    assert manifest.number_of_instances == len(ct_study.paths)
    assert set(referenced_instances(dcmread(DicomBytesIO(bytes(manifest.kos))))) == ct_study.sop_uids
