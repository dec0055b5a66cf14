"""C-GET, C-MOVE (into the portal's receiver) and WADO-RS, proven against what the source holds."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dicomkit import GatewayError, client_for
from dicomkit.gateway import GatewayClient
from dicomkit.receiver import StorageReceiver
from dicomkit.sim.pacs import SimulatedPacs

from .conftest import PORTAL_AE, Recorder, Studies, orthanc_config
from .orthanc import OrthancProcess

pytestmark = pytest.mark.interop


def data_set_digest(data: bytes) -> str:
    """sha256 of the data set alone: each side writes its own File Meta Information."""
    offset = 132 + 12 + int.from_bytes(data[140:144], "little")
    return hashlib.sha256(data[offset:]).hexdigest()


def orthanc_holdings(server: OrthancProcess, study_uid: str) -> dict[str, str]:
    """SOP Instance UID -> digest of the data set Orthanc holds (from its REST API)."""
    held = {}
    for oid in server.find("Instance", {"StudyInstanceUID": study_uid}):
        sop = server.instance_tags(oid)["SOPInstanceUID"]
        held[sop] = data_set_digest(server.instance_file(oid))
    return held


def sim_holdings(pacs: SimulatedPacs, study_uid: str) -> dict[str, str]:
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = study_uid
    return {m.sop_instance_uid: data_set_digest(m.path.read_bytes()) for m in pacs.index.instances_for(ds)}


@pytest.fixture(params=["orthanc", "sim"])
def source(
    request: pytest.FixtureRequest, receiver: StorageReceiver
) -> tuple[str, Callable[..., GatewayClient], Callable[[str], dict[str, str]]]:
    from .conftest import sim_config

    if request.param == "orthanc":
        server = request.getfixturevalue("orthanc_a")
        return (
            "orthanc",
            lambda **kw: client_for(
                orthanc_config(server, **kw), local_ae_title=PORTAL_AE, move_destination=receiver.move_destination
            ),
            lambda uid: orthanc_holdings(server, uid),
        )
    pacs = request.getfixturevalue("sim_pacs")
    return (
        "sim",
        lambda **kw: client_for(
            sim_config(pacs, **kw), local_ae_title=PORTAL_AE, move_destination=receiver.move_destination
        ),
        lambda uid: sim_holdings(pacs, uid),
    )


def _received(retrieval: object) -> dict[str, str]:
    got = {}
    for instance in retrieval:  # type: ignore[attr-defined]
        assert instance.path.exists() and instance.path.suffix == ".dcm"
        got[instance.sop_instance_uid] = data_set_digest(instance.path.read_bytes())
    return got


@pytest.mark.parametrize("method", ["c-get", "c-move"])
def test_a_whole_study_arrives_byte_for_byte(source, studies: Studies, tmp_path: Path, method: str) -> None:  # type: ignore[no-untyped-def]
    _, make, holdings = source
    study = studies.uid(studies.mr_nhs_as_other_id)
    retrieval = make(retrieve_method=method).retrieve(study, spool_dir=tmp_path)
    got = _received(retrieval)
    assert got == holdings(study)
    assert retrieval.summary.ok and retrieval.summary.completed == 6
    assert sorted(p.name for p in tmp_path.glob("*.dcm")) == sorted(f"{uid}.dcm" for uid in got)


@pytest.mark.parametrize("method", ["c-get", "c-move"])
def test_a_series_or_chosen_instances_arrive(source, studies: Studies, tmp_path: Path, method: str) -> None:  # type: ignore[no-untyped-def]
    _, make, holdings = source
    client = make(retrieve_method=method)
    study = studies.uid(studies.mr_nhs_as_other_id)
    series = client.find_series(study)[1].series_instance_uid
    in_series = {i.sop_instance_uid for i in client.find_instances(study, series)}
    assert set(_received(client.retrieve(study, series, spool_dir=tmp_path / "series"))) == in_series
    chosen = sorted(holdings(study))[:3]
    assert sorted(_received(client.retrieve(study, sop_uids=chosen, spool_dir=tmp_path / "sops"))) == chosen


def test_c_move_arrivals_are_matched_to_their_job(source, studies: Studies, tmp_path: Path, recorder: Recorder) -> None:  # type: ignore[no-untyped-def]
    name, make, _ = source
    study = studies.uid(studies.ct_nhs_as_patient_id)
    got = _received(make(retrieve_method="c-move").retrieve(study, spool_dir=tmp_path, label=f"transfer-{name}"))
    for sop in got:
        arrival = recorder.arrivals_for(sop)[-1]
        assert arrival.job_label == f"transfer-{name}" and arrival.job_id
        assert arrival.peer.calling_ae in ("ORTHANCA", "SIMPACS")
    if name == "orthanc":  # Orthanc names the C-MOVE requester in every sub-operation
        assert {recorder.arrivals_for(sop)[-1].peer.move_originator_ae for sop in got} == {PORTAL_AE}


def test_compressed_instances_arrive_as_stored(source, studies: Studies, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, make, holdings = source
    study = studies.uid(studies.compressed["jpeg2000"])
    retrieval = make(retrieve_method="c-get").retrieve(study, spool_dir=tmp_path)
    instances = list(retrieval)
    assert {i.transfer_syntax_uid for i in instances} == {"1.2.840.10008.1.2.4.90"}
    assert {i.sop_instance_uid: data_set_digest(i.path.read_bytes()) for i in instances} == holdings(study)


@pytest.mark.parametrize("method", ["c-get", "c-move"])
def test_closing_early_cancels_and_cleans_up(
    source, studies: Studies, tmp_path: Path, receiver: StorageReceiver, method: str
) -> None:  # type: ignore[no-untyped-def]
    _, make, _ = source
    retrieval = make(retrieve_method=method).retrieve(studies.uid(studies.mr_nhs_as_other_id), spool_dir=tmp_path)
    first = next(retrieval)
    retrieval.close()
    assert first.path.exists()
    assert not list(receiver.jobs_dir.glob("*.json"))
    assert not list(tmp_path.glob(".landing-*"))


def test_a_slow_consumer_holds_the_sender_back(source, studies: Studies, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, make, holdings = source
    study = studies.uid(studies.mr_nhs_as_other_id)
    client = make(retrieve_method="c-get")
    assert client.dimse is not None
    retrieval = client.dimse.retrieve(study, spool_dir=tmp_path, max_pending=1)
    seen = []
    for instance in retrieval:
        seen.append(instance.sop_instance_uid)
        # With one slot, at most the instance in hand plus one waiting have landed.
        assert len(list(tmp_path.glob("*.dcm"))) <= len(seen) + 1
        time.sleep(0.05)
    assert sorted(seen) == sorted(holdings(study))


def test_wado_rs_streams_a_study_byte_for_byte(orthanc_a: OrthancProcess, studies: Studies, tmp_path: Path) -> None:
    client = client_for(orthanc_config(orthanc_a, retrieve_method="wado-rs"), local_ae_title=PORTAL_AE)
    for paths in (studies.mr_nhs_as_other_id, studies.compressed["jpeg-ls"]):
        study = studies.uid(paths)
        retrieval = client.retrieve(study, spool_dir=tmp_path / study)
        assert _received(retrieval) == orthanc_holdings(orthanc_a, study)
        assert retrieval.summary.ok


def test_wado_rs_fetches_a_series_and_chosen_instances(
    orthanc_a: OrthancProcess, studies: Studies, tmp_path: Path
) -> None:
    client = client_for(orthanc_config(orthanc_a, retrieve_method="wado-rs"), local_ae_title=PORTAL_AE)
    study = studies.uid(studies.mr_nhs_as_other_id)
    series = client.find_series(study)[0].series_instance_uid
    assert len(_received(client.retrieve(study, series, spool_dir=tmp_path / "a"))) == 2
    chosen = [p.stem for p in studies.mr_nhs_as_other_id[:2]]
    assert sorted(_received(client.retrieve(study, sop_uids=chosen, spool_dir=tmp_path / "b"))) == sorted(chosen)


def test_retrieving_an_unknown_study_by_wado_rs_is_a_clear_error(orthanc_a: OrthancProcess, tmp_path: Path) -> None:
    client = client_for(orthanc_config(orthanc_a, retrieve_method="wado-rs"), local_ae_title=PORTAL_AE)
    with pytest.raises(GatewayError, match="not found"):
        list(client.retrieve("1.2.3.4.5.6", spool_dir=tmp_path))


def test_c_move_without_a_receiver_is_a_configuration_error(orthanc_a: OrthancProcess, tmp_path: Path) -> None:
    client = client_for(orthanc_config(orthanc_a, retrieve_method="c-move"), local_ae_title=PORTAL_AE)
    with pytest.raises(GatewayError, match="needs the portal's receiver"):
        client.retrieve("1.2.3", spool_dir=tmp_path)


def test_c_move_to_a_destination_the_pacs_does_not_know_is_a_clear_error(
    sim_pacs: SimulatedPacs, studies: Studies, tmp_path: Path
) -> None:
    from dicomkit.moves import MoveDestination

    from .conftest import sim_config

    client = client_for(
        sim_config(sim_pacs, retrieve_method="c-move"),
        local_ae_title=PORTAL_AE,
        move_destination=MoveDestination("NOBODY", tmp_path / "jobs"),
    )
    with pytest.raises(GatewayError, match="0xA801"):
        list(client.retrieve(studies.uid(studies.ct_nhs_as_patient_id), spool_dir=tmp_path / "spool"))
