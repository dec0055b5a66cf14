"""dicomkit.kos without Django: the XDS-I.b manifest's structure, value types and refusals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydicom import dcmread
from pydicom.filebase import DicomBytesIO

from dicomkit.kos import (
    KOS_SOP_CLASS,
    ManifestInstance,
    ManifestSeries,
    ManifestStudy,
    build_manifest,
    manifest_bytes,
    referenced_instances,
    value_type,
)

CT, SR, ECG = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.9.1.1"


def study(*series: ManifestSeries) -> ManifestStudy:
    return ManifestStudy(
        "1.2.826.0.1.3680043.8.498.77",
        "RBB1234567",
        issuer_of_patient_id="RBB_MRN",
        patient_name="Jones^Aoife",
        nhs_number="9434765919",
        series=series,
        retrieve_ae_title="BETA_PACS",
        retrieve_location_uid="1.2.826.0.1.3680043.8.498.1",
    )


@pytest.mark.parametrize(("sop_class", "expected"), [(CT, "IMAGE"), (SR, "COMPOSITE"), (ECG, "WAVEFORM")])
def test_each_reference_has_its_template_value_type(sop_class, expected):
    assert value_type(sop_class) == expected


def test_the_manifest_round_trips_as_a_part_10_file_naming_every_instance():
    images = ManifestSeries("1.2.3.1", "CT", 1, instances=(ManifestInstance("1.2.3.1.1", CT, 1),), retrieve_url="u1")
    report = ManifestSeries("1.2.3.2", "SR", 2, instances=(ManifestInstance("1.2.3.2.1", SR),), retrieve_url="u2")

    ds = dcmread(
        DicomBytesIO(manifest_bytes(build_manifest(study(images, report), now=datetime(2026, 12, 7, 9, tzinfo=UTC))))
    )

    assert ds.SOPClassUID == ds.file_meta.MediaStorageSOPClassUID == KOS_SOP_CLASS
    assert referenced_instances(ds) == {"1.2.3.1.1": CT, "1.2.3.2.1": SR}
    assert [item.ValueType for item in ds.ContentSequence] == ["IMAGE", "COMPOSITE"]
    assert [s.RetrieveURL for s in ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence] == [
        "u1",
        "u2",
    ]
    assert ds.OtherPatientIDsSequence[0].PatientID == "9434765919"
    assert ds.OtherPatientIDsSequence[0].IssuerOfPatientID == "NHS"
    assert (ds.PatientID, ds.IssuerOfPatientID) == ("RBB1234567", "RBB_MRN")
    assert ds.ContentDate == "20261207"


def test_a_manifest_of_nothing_is_refused():
    with pytest.raises(ValueError, match="at least one instance"):
        build_manifest(study(ManifestSeries("1.2.3.1", "CT")), now=datetime(2026, 12, 7, 9, tzinfo=UTC))
