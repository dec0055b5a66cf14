"""Coercion of one dataset (dicomkit.coercion): procedure codes to NICIP + SNOMED CT, private elements kept,
removed or kept by creator, two known private attributes converted to standard ones. UIDs never change."""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dicomkit import coercion as dc

MAPPING = dc.ProcedureMapping(
    nicip=dc.Code("XCTHE", dc.NICIP_SCHEME, "CT Head (synthetic)"),
    snomed=dc.Code("7000001002", dc.SNOMED_SCHEME, "CT of head (synthetic)"),
)


def dataset() -> Dataset:
    ds = Dataset()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = "1.2.3", "1.2.3.4", "1.2.3.4.5"
    ds.StudyDescription = "CT HEAD PLAIN"
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "CTHD1", "RAA", "CT head plain"
    ds.ProcedureCodeSequence = Sequence([code])
    ds.private_block(0x0009, "ACME CT 1.0", create=True).add_new(0x10, "LO", "scanner secret")
    ds.private_block(0x0011, "KEEP ME 1.0", create=True).add_new(0x01, "LO", "kept value")
    return ds


def test_the_procedure_code_becomes_the_nicip_code_with_snomed_ct_and_the_senders_code_as_equivalents():
    ds = dataset()
    assert dc.apply_procedure_mapping(ds, MAPPING, dc.sender_codes(ds)[0])
    item = ds.ProcedureCodeSequence[0]
    assert (item.CodeValue, item.CodingSchemeDesignator) == ("XCTHE", "NICIP")
    equivalents = [(e.CodeValue, e.CodingSchemeDesignator) for e in item.EquivalentCodeSequence]
    assert equivalents == [("7000001002", "SCT"), ("CTHD1", "RAA")]
    assert not dc.apply_procedure_mapping(ds, MAPPING, None)  # coerced once only


def test_a_description_pattern_is_a_wildcard_not_a_regular_expression():
    assert dc.description_matches("ct*head*", "CT HEAD PLAIN")
    assert not dc.description_matches("ct.*head", "CT HEAD PLAIN")


def test_remove_takes_every_private_element_and_no_uid_changes():
    ds = dataset()
    removed, _ = dc.apply_private_policy(ds, dc.PrivatePolicy.REMOVE)
    assert removed == 4 and not any(elem.tag.is_private for elem in ds)
    assert (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID) == ("1.2.3", "1.2.3.4", "1.2.3.4.5")


def test_keep_changes_nothing():
    ds = dataset()
    assert dc.apply_private_policy(ds, dc.PrivatePolicy.KEEP) == (0, [])
    assert dc.private_creators(ds) == {"ACME CT 1.0", "KEEP ME 1.0"}


def test_the_allow_list_keeps_only_the_named_creators_blocks():
    ds = dataset()
    dc.apply_private_policy(ds, dc.PrivatePolicy.ALLOW_LIST, frozenset({"KEEP ME 1.0"}))
    assert dc.private_creators(ds) == {"KEEP ME 1.0"}
    assert ds.private_block(0x0011, "KEEP ME 1.0")[0x01].value == "kept value"


def test_private_elements_inside_sequences_go_too():
    ds = dataset()
    inner = Dataset()
    inner.private_block(0x0029, "ACME CT 1.0", create=True).add_new(0x01, "LO", "nested")
    ds.ReferencedImageSequence = Sequence([inner])
    dc.remove_private(ds)
    assert not any(elem.tag.is_private for elem in ds.ReferencedImageSequence[0])


def test_the_siemens_b_value_becomes_the_standard_diffusion_b_value():
    ds = Dataset()
    ds.private_block(0x0019, "SIEMENS MR HEADER", create=True).add_new(0x0C, "IS", "1000")
    removed, made = dc.apply_private_policy(ds, dc.PrivatePolicy.REMOVE)
    assert made == ["Siemens diffusion b-value"] and removed == 2
    assert ds.DiffusionBValue == 1000.0


def test_the_philips_b_factor_becomes_the_standard_diffusion_b_value():
    ds = Dataset()
    ds.private_block(0x2001, "Philips MR Imaging DD 001", create=True).add_new(0x03, "FL", 800.0)
    _, made = dc.apply_private_policy(ds, dc.PrivatePolicy.ALLOW_LIST, frozenset())
    assert made == ["Philips diffusion b-factor"] and ds.DiffusionBValue == 800.0


def test_a_standard_value_already_present_is_not_overwritten():
    ds = Dataset()
    ds.DiffusionBValue = 500.0
    ds.private_block(0x0019, "SIEMENS MR HEADER", create=True).add_new(0x0C, "IS", "1000")
    assert dc.convert_private(ds) == [] and ds.DiffusionBValue == 500.0
