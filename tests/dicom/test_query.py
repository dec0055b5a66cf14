"""Echo and queries against real Orthanc (C-FIND and QIDO-RS) and the simulated PACS (C-FIND)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dicomkit import StudyQuery, client_for
from dicomkit.gateway import GatewayClient

from .conftest import NHS_A, PORTAL_AE, Studies, orthanc_config
from .orthanc import OrthancProcess

pytestmark = pytest.mark.interop

Make = tuple[str, Callable[..., GatewayClient]]


@pytest.fixture(params=["orthanc-c-find", "orthanc-qido-rs", "sim-c-find"])
def querier(request: pytest.FixtureRequest) -> GatewayClient:
    kind, method = request.param.split("-", 1)
    if kind == "orthanc":
        return client_for(
            orthanc_config(request.getfixturevalue("orthanc_a"), query_method=method), local_ae_title=PORTAL_AE
        )
    from .conftest import sim_config

    return client_for(sim_config(request.getfixturevalue("sim_pacs")), local_ae_title=PORTAL_AE)


def test_echo_succeeds(dimse_gateway: Make) -> None:
    _, make = dimse_gateway
    result = make().echo()
    assert result.ok, result.error
    assert result.latency_ms is not None and result.latency_ms < 2000


def test_dicomweb_echo_succeeds(orthanc_a: OrthancProcess) -> None:
    cfg = orthanc_config(orthanc_a, query_method="qido-rs", retrieve_method="wado-rs", store_method="stow-rs")
    result = client_for(cfg, local_ae_title=PORTAL_AE).echo()
    assert result.ok, result.error


def test_nhs_search_finds_it_as_patient_id_and_as_other_id(querier: GatewayClient, studies: Studies) -> None:
    found = querier.find_studies(StudyQuery(nhs_number="999 000 0018"))
    by_uid = {s.study_instance_uid: s for s in found}
    ct, mr = by_uid[studies.uid(studies.ct_nhs_as_patient_id)], by_uid[studies.uid(studies.mr_nhs_as_other_id)]
    assert set(by_uid) == {ct.study_instance_uid, mr.study_instance_uid}
    assert ct.nhs_number == mr.nhs_number == NHS_A
    assert (ct.patient_id, ct.issuer_of_patient_id) == (NHS_A, "NHS")
    assert (mr.patient_id, mr.issuer_of_patient_id) == ("RXH1000002", "RXH")
    assert any(o.patient_id == NHS_A for o in mr.other_patient_ids)


def test_study_results_carry_counts_and_demographics(querier: GatewayClient, studies: Studies) -> None:
    (mr,) = querier.find_studies(StudyQuery(study_instance_uid=studies.uid(studies.mr_nhs_as_other_id)))
    assert (mr.series_count, mr.instance_count, mr.modalities) == (3, 6, ("MR",))
    assert (mr.birth_date, mr.sex, mr.study_date, mr.description) == ("19800214", "M", "20230520", "MR brain")
    assert mr.accession_number


def test_names_in_utf8_are_decoded(querier: GatewayClient, studies: Studies) -> None:
    (mr,) = querier.find_studies(StudyQuery(study_instance_uid=studies.uid(studies.mr_nhs_as_other_id)))
    assert mr.patient_name == "Llŷr^Dafydd"


def test_names_in_latin1_are_decoded(querier: GatewayClient, studies: Studies) -> None:
    (ct,) = querier.find_studies(StudyQuery(study_instance_uid=studies.uid(studies.ct_nhs_as_patient_id)))
    assert ct.patient_name == "Ó Súilleabháin^Siobhán"


def test_latin1_answers_from_a_latin1_pacs_are_decoded(orthanc_b: OrthancProcess, studies: Studies) -> None:
    orthanc_b.upload(studies.ct_nhs_as_patient_id[:1])
    client = client_for(orthanc_config(orthanc_b), local_ae_title=PORTAL_AE)
    (ct,) = client.find_studies(StudyQuery(study_instance_uid=studies.uid(studies.ct_nhs_as_patient_id)))
    assert ct.patient_name == "Ó Súilleabháin^Siobhán"


def test_wildcards_and_date_ranges_match(querier: GatewayClient, studies: Studies) -> None:
    found = querier.find_studies(
        StudyQuery(patient_id="RXH100000?", study_date_from="20230101", study_date_to="20231231")
    )
    assert [s.study_instance_uid for s in found] == [studies.uid(studies.mr_nhs_as_other_id)]
    assert not querier.find_studies(StudyQuery(patient_id="RXH100000?", study_date_from="20240101"))


def test_name_wildcard_and_modality_filter(querier: GatewayClient, studies: Studies) -> None:
    found = querier.find_studies(StudyQuery(patient_name="Ó S*", modality="CT"))
    assert studies.uid(studies.ct_nhs_as_patient_id) in [s.study_instance_uid for s in found]
    assert not querier.find_studies(StudyQuery(patient_name="Ó S*", modality="MR"))


def test_series_level(querier: GatewayClient, studies: Studies) -> None:
    series = querier.find_series(studies.uid(studies.mr_nhs_as_other_id))
    assert [(s.series_number, s.modality, s.instance_count) for s in series] == [
        (1, "MR", 2),
        (2, "MR", 2),
        (3, "MR", 2),
    ]
    assert [s.description for s in series] == ["T1 axial", "T2 axial", "FLAIR axial"]


def test_instance_level(querier: GatewayClient, studies: Studies) -> None:
    study = studies.uid(studies.mr_nhs_as_other_id)
    instances = querier.find_instances(study)
    assert sorted(i.sop_instance_uid for i in instances) == sorted(p.stem for p in studies.mr_nhs_as_other_id)
    first_series = querier.find_series(study)[0].series_instance_uid
    assert len(querier.find_instances(study, first_series)) == 2
    assert all(i.sop_class_uid == "1.2.840.10008.5.1.4.1.1.4" for i in instances)


def test_it_tells_which_of_a_list_of_instances_it_holds(querier: GatewayClient, studies: Studies) -> None:
    """What the transfer engine's verification asks, group by group, while later batches still flow."""
    study = studies.uid(studies.mr_nhs_as_other_id)
    held = sorted(p.stem for p in studies.mr_nhs_as_other_id)
    unknown = "1.2.826.0.1.3680043.8.498.424242"
    assert querier.find_instance_uids(study, [held[0], held[3], unknown]) == {held[0], held[3]}
    assert querier.find_instance_uids(study) == set(held)
    assert querier.find_instance_uids(study, [unknown]) == set()


def test_an_unknown_nhs_number_finds_nothing(querier: GatewayClient) -> None:
    assert querier.find_studies(StudyQuery(nhs_number="9434765919")) == []
