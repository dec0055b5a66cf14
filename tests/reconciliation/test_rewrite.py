"""The Django-free rewrite of a file's identity: what changes, what never does."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread

from dicomkit.identity import OTHER_PATIENT_IDS, nhs_number_of
from dicomkit.sim.synthetic import SyntheticPatient, make_study
from reconciliation.rewrite import Rewrite, keep_safe, read_identity, rewrite_file

PATIENT = SyntheticPatient(
    nhs_number="9990000026",
    family_name="Evans",
    given_name="Rhys",
    birth_date="19620704",
    sex="M",
    local_id="RAA0000001",
    local_issuer="RAA_MRN",
)


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return make_study(
        tmp_path,
        modality="CT",
        n_instances=1,
        patient=PATIENT,
        nhs_store="other-ids",
        accession_number="A77",
        description="CT chest",
        rows=64,
        columns=64,
        seed=5,
    )[0]


def test_identity_is_read_as_sent(sample):
    identity = read_identity(sample)
    assert (identity.patient_id, identity.issuer, identity.nhs_number) == ("RAA0000001", "RAA_MRN", "9990000026")
    assert identity.birth_date == "19620704"


def test_a_rewrite_files_under_the_local_id_and_keeps_the_source_ids(sample):
    before = dcmread(sample)
    rewrite_file(
        sample,
        Rewrite(patient_id="RBB42", issuer="RBB_MRN", prefix="RAA", prefix_accession=True, prefix_description=True),
    )
    after = dcmread(sample)

    assert (after.PatientID, after.IssuerOfPatientID) == ("RBB42", "RBB_MRN")
    others = {(i.PatientID, i.IssuerOfPatientID) for i in after.OtherPatientIDsSequence}
    assert {("RAA0000001", "RAA_MRN"), ("9990000026", "NHS")} <= others
    # What PACS match NHS numbers on, and the number alone: Orthanc did not find "nhs\\MRN" by the NHS number.
    assert after[OTHER_PATIENT_IDS].value == "9990000026"
    assert nhs_number_of(after) == "9990000026"
    for keyword in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "PixelData", "PatientName"):
        assert after[keyword].value == before[keyword].value, keyword
    assert after.file_meta.TransferSyntaxUID == before.file_meta.TransferSyntaxUID
    assert (after.AccessionNumber, after.StudyDescription) == ("RAAA77", "RAA CT chest")


def test_rewriting_again_does_not_prefix_or_add_ids_twice(sample):
    change = Rewrite(patient_id="RBB42", issuer="RBB_MRN", prefix="RAA", prefix_accession=True, prefix_description=True)
    rewrite_file(sample, change)
    rewrite_file(sample, change)
    ds = dcmread(sample)
    assert (ds.AccessionNumber, ds.StudyDescription) == ("RAAA77", "RAA CT chest")
    assert len(ds.OtherPatientIDsSequence) == 2


def test_a_study_without_a_description_is_prefixed_once_however_often_it_is_rewritten(tmp_path):
    path = make_study(tmp_path, modality="CR", n_instances=1, rows=8, columns=8, seed=7)[0]
    ds = dcmread(path)
    ds.StudyDescription = ""
    ds.save_as(path)
    change = Rewrite(prefix="RAA", prefix_description=True)
    rewrite_file(path, change)
    rewrite_file(path, change)
    assert dcmread(path).StudyDescription == "RAA"


def test_an_accession_number_too_long_to_prefix_is_kept_as_sent_not_cut(tmp_path):
    path = make_study(
        tmp_path, modality="CR", n_instances=1, accession_number="ABCDEFGHIJKLMN", rows=8, columns=8, seed=6
    )[0]
    rewrite_file(path, Rewrite(prefix="RAA", prefix_accession=True))
    assert dcmread(path).AccessionNumber == "ABCDEFGHIJKLMN"


def test_with_everything_off_the_file_is_untouched(sample):
    before = sample.read_bytes()
    rewrite_file(sample, Rewrite(prefix="RAA"))
    assert sample.read_bytes() == before


def test_a_held_file_is_moved_into_the_queue_folder(sample, tmp_path):
    target = keep_safe(sample, tmp_path / "queue" / "7")
    assert target.exists() and not sample.exists() and target.name == sample.name
