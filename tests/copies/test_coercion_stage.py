"""Coercion in the engine's before-store stage, per receiving trust: the mapping table uploaded by B's imaging
managers (all or nothing), unmapped arrivals listed, private elements by agreement, and the ledger holding the
hash of the bytes actually sent."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from copies.models import ProcedureMapping, UnmappedProcedure
from dicomkit.spool import sha256_of
from directory.models import SharingAgreement
from tests.helpers import api_as, signed_in

from .conftest import stored_transfer

pytestmark = pytest.mark.django_db
TABLE = (
    "sender_scheme,sender_code,description_pattern,nicip_code,nicip_meaning,snomed_code,snomed_meaning\n"
    "RAA,CTHD1,,XCTHE,CT Head (synthetic),7000001002,CT of head (synthetic)\n"
    ",,*KNEE*,XMRKN,MR Knee (synthetic),7000002009,MR of knee (synthetic)\n"
)


@pytest.fixture
def receiving(trust_b):
    trust_b.reconcile_patient_id = trust_b.prefix_accession = trust_b.prefix_study_description = False
    trust_b.save()
    return trust_b


def coded(paths, code: str):
    for path in paths:
        ds = dcmread(path)
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code, "RAA", "as the sender codes it"
        ds.ProcedureCodeSequence = Sequence([item])
        ds.private_block(0x0009, "ACME CT 1.0", create=True).add_new(0x10, "LO", "scanner serial 42")
        ds.save_as(path)
    return paths


def upload(user, text: str):
    return api_as(user).post(
        "/api/v1/trusts/RBB/procedure-mappings/",
        {"file": SimpleUploadedFile("map.csv", text.encode(), content_type="text/csv")},
        format="multipart",
    )


def test_bs_imaging_manager_uploads_the_table_and_nobody_else_may(receiving, bea, amir, bob):
    assert upload(bea, TABLE).json() == {"trust": "RBB", "rows": 2}
    assert upload(amir, TABLE).status_code == 403  # another trust's manager
    assert upload(bob, TABLE).status_code == 403  # B's clinician
    assert ProcedureMapping.objects.filter(trust=receiving).count() == 2


def test_a_bad_table_changes_nothing_and_names_each_line(receiving, bea):
    upload(bea, TABLE)
    bad = TABLE + "RAA,CTHD1,,XCTHE,,7000001002,\nRAA,CTHD9,,bad,,7000001002,\n"
    answer = upload(bea, bad)
    assert answer.status_code == 400
    assert answer.json()["file"] == [
        "line 4: the same sender key as line 2",
        "line 5: nicip_code 'bad' is not a NICIP code",
    ]
    assert ProcedureMapping.objects.filter(trust=receiving).count() == 2


def test_the_page_edits_a_row(receiving, bea):
    upload(bea, TABLE)
    row = ProcedureMapping.objects.get(sender_code="CTHD1")
    values = {
        "id": row.pk,
        "sender_scheme": "RAA",
        "sender_code": "CTHD1",
        "nicip_code": "XCTHF",
        "snomed_code": "7000002009",
    }
    assert signed_in(bea).post("/copies/mapping/RBB/", values).status_code == 302
    row.refresh_from_db()
    assert (row.nicip_code, row.snomed_code) == ("XCTHF", "7000002009")
    values["snomed_code"] = "7000002008"
    page = signed_in(bea).post("/copies/mapping/RBB/", values)
    assert page.status_code == 400 and "fails the SNOMED CT check digit" in page.content.decode()


def test_the_stage_maps_the_code_removes_private_elements_and_the_ledger_has_the_sent_bytes_hash(
    receiving, trust_a, gateway_a, gateway_b, study_files, alice, bea
):
    upload(bea, TABLE)
    SharingAgreement.objects.create(trust_a=trust_a, trust_b=receiving, private_elements="remove")
    coded(study_files, "CTHD1")
    uids = {p.stem: (dcmread(p).StudyInstanceUID, dcmread(p).SeriesInstanceUID) for p in study_files}
    transfer = stored_transfer(
        source=trust_a,
        destination=receiving,
        source_gateway=gateway_a,
        destination_gateway=gateway_b,
        paths=study_files,
        by=alice,
    )
    sent = dict(transfer.instances.values_list("sop_instance_uid", "sha256"))
    for path in study_files:  # the spool files, as the stage left them: the bytes that go to B
        ds = dcmread(path)
        assert ds.ProcedureCodeSequence[0].CodeValue == "XCTHE"
        assert not any(elem.tag.is_private for elem in ds)
        assert (ds.SOPInstanceUID, (ds.StudyInstanceUID, ds.SeriesInstanceUID)) == (path.stem, uids[path.stem])
        assert sent[path.stem] == sha256_of(path)


def test_an_arrival_no_row_maps_is_listed_for_mapping(
    receiving, trust_a, gateway_a, gateway_b, study_files, alice, bea
):
    upload(bea, TABLE)
    coded(study_files, "CTXX7")
    stored_transfer(
        source=trust_a,
        destination=receiving,
        source_gateway=gateway_a,
        destination_gateway=gateway_b,
        paths=study_files,
        by=alice,
    )
    listed = UnmappedProcedure.objects.get(trust=receiving)
    assert (listed.sender_scheme, listed.sender_code, listed.studies, listed.source_id) == (
        "RAA",
        "CTXX7",
        1,
        trust_a.pk,
    )
    assert "CTXX7" in signed_in(bea).get("/copies/mapping/RBB/").content.decode()
    # Mapping it takes it off the list.
    upload(bea, TABLE + "RAA,CTXX7,,XCTXX,,7000001002,\n")
    assert not UnmappedProcedure.objects.filter(trust=receiving).exists()


def test_without_a_table_or_a_private_policy_the_files_are_not_touched(
    receiving, trust_a, gateway_a, gateway_b, study_files, alice
):
    before = {p.stem: sha256_of(p) for p in study_files}
    transfer = stored_transfer(
        source=trust_a,
        destination=receiving,
        source_gateway=gateway_a,
        destination_gateway=gateway_b,
        paths=study_files,
        by=alice,
    )
    assert {p.stem: sha256_of(p) for p in study_files} == before
    assert set(transfer.instances.values_list("sha256", flat=True)) == {""}  # the engine hashes; no stage did


def test_a_regional_admin_sets_the_agreements_private_element_policy(agreement, rita, amir):
    url = f"/api/v1/agreements/{agreement.pk}/"
    body = {
        "private_elements": "allow_list",
        "private_creators_kept": ["KEEP ME 1.0"],
        "send_corrected_instances": False,
    }
    changed = api_as(rita).patch(url, body, format="json")
    assert changed.status_code == 200, changed.json()
    assert (changed.json()["private_elements"], changed.json()["private_creators_kept"]) == (
        "allow_list",
        ["KEEP ME 1.0"],
    )
    assert api_as(rita).patch(url, {"private_creators_kept": ["bad\\creator"]}, format="json").status_code == 400
    assert api_as(rita).patch(url, {"private_elements": "shred"}, format="json").status_code == 400
    assert api_as(amir).patch(url, {"private_elements": "keep"}, format="json").status_code == 403
