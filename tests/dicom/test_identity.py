from __future__ import annotations

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from dicomkit.identity import OTHER_PATIENT_IDS, nhs_number_of, person_name
from dicomkit.models import StudyQuery
from dicomkit.queries import merge_studies, study_identifiers

VALID = "9434765919"


def _ds(**kw: object) -> Dataset:
    ds = Dataset()
    for k, v in kw.items():
        setattr(ds, k, v)
    return ds


def test_nhs_number_as_patient_id_needs_the_nhs_issuer() -> None:
    assert nhs_number_of(_ds(PatientID=VALID, IssuerOfPatientID="NHS")) == VALID
    assert nhs_number_of(_ds(PatientID=VALID, IssuerOfPatientID="RXH")) == ""


def test_nhs_number_in_other_patient_ids_sequence() -> None:
    item = _ds(PatientID="943 476 5919", IssuerOfPatientID="NHS")
    ds = _ds(PatientID="RXH1", IssuerOfPatientID="RXH", OtherPatientIDsSequence=Sequence([item]))
    assert nhs_number_of(ds) == VALID


def test_nhs_number_in_retired_other_patient_ids_without_a_sequence() -> None:
    ds = _ds(PatientID="RXH1", IssuerOfPatientID="RXH")
    ds.add_new(OTHER_PATIENT_IDS, "LO", ["X1", VALID])
    assert nhs_number_of(ds) == VALID


def test_an_invalid_check_digit_is_not_an_nhs_number() -> None:
    assert nhs_number_of(_ds(PatientID="9434765918", IssuerOfPatientID="NHS")) == ""


def test_undeclared_utf8_names_are_not_garbled() -> None:
    ds = Dataset()
    ds[Tag("PatientName")] = RawDataElement(Tag("PatientName"), "PN", 0, "Llŷr^Dafydd".encode(), 0, False, True)
    assert person_name(ds) == "Llŷr^Dafydd"


def test_an_nhs_search_asks_both_ways() -> None:
    as_patient_id, as_other_id = study_identifiers(StudyQuery(nhs_number="943 476 5919", modality="ct"))
    assert as_patient_id.PatientID == VALID and as_patient_id[OTHER_PATIENT_IDS].value == ""
    assert as_other_id.PatientID == "" and as_other_id[OTHER_PATIENT_IDS].value == VALID
    assert as_patient_id.ModalitiesInStudy == "CT"


def test_date_ranges_become_dicom_ranges() -> None:
    (ds,) = study_identifiers(StudyQuery(study_date_from="2024-01-01", study_date_to=""))
    assert ds.StudyDate == "20240101-"


def test_merge_drops_studies_whose_nhs_number_differs() -> None:
    right = _ds(StudyInstanceUID="1.2", PatientID=VALID, IssuerOfPatientID="NHS")
    wrong_issuer = _ds(StudyInstanceUID="1.3", PatientID=VALID, IssuerOfPatientID="RXH")
    studies = merge_studies([right, wrong_issuer, right], StudyQuery(nhs_number=VALID))
    assert [s.study_instance_uid for s in studies] == ["1.2"]
