"""Copies fixtures: a third trust (C) with its own people, a patient, and a study file set made on disk."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from accounts.models import User
from accounts.roles import Role
from dicomkit import RetrievedInstance, nhs
from dicomkit.sim.synthetic import SyntheticPatient, make_study
from directory.models import Gateway, SharingAgreement, Trust
from tests.helpers import grant, make_user
from tests.transfers.conftest import (  # noqa: F401 - Orthanc pair, worker and the SQLite hook, shared on purpose
    pacs_pair,
    pytest_collection_modifyitems,
    transfer_worker,
)
from transfers.models import InstanceState, Transfer, TransferInstance


@pytest.fixture
def trust_c(db) -> Trust:
    return Trust.objects.create(ods_code="RCC", name="Gamma Community Hospital", patient_id_issuer="RCC_MRN")


@pytest.fixture
def gateway_c(trust_c) -> Gateway:
    return Gateway.objects.create(trust=trust_c, name="Gamma PACS", ae_title="GAMMA_PACS", host="127.0.0.1", port=4244)


@pytest.fixture
def cara(trust_c) -> User:
    """Trust C's imaging manager."""
    return grant(make_user("cara@c.example"), trust_c, Role.IMAGING_MANAGER)


@pytest.fixture
def cyd(trust_c) -> User:
    """Trust C's IG officer."""
    return grant(make_user("cyd@c.example"), trust_c, Role.IG_OFFICER)


@pytest.fixture
def dee(db) -> User:
    """An imaging manager of a trust with no part in any of it: must see nothing."""
    outsider = Trust.objects.create(ods_code="RDD", name="Delta Hospital")
    return grant(make_user("dee@d.example"), outsider, Role.IMAGING_MANAGER)


@pytest.fixture
def patient() -> SyntheticPatient:
    return SyntheticPatient(
        nhs_number=nhs.synthetic(random.Random(2201)),
        family_name="Okafor",
        given_name="Ngozi",
        birth_date="19750412",
        sex="F",
        local_id="RAA1234567",
        local_issuer="RAA_MRN",
    )


def retrieved(paths: list[Path]) -> list[RetrievedInstance]:
    from pydicom import dcmread

    items = []
    for path in paths:
        ds = dcmread(path, stop_before_pixels=True)
        items.append(
            RetrievedInstance(
                path=path,
                sop_instance_uid=str(ds.SOPInstanceUID),
                sop_class_uid=str(ds.SOPClassUID),
                study_instance_uid=str(ds.StudyInstanceUID),
                series_instance_uid=str(ds.SeriesInstanceUID),
                transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
                size=path.stat().st_size,
            )
        )
    return items


def stored_transfer(
    *,
    source: Trust,
    destination: Trust,
    source_gateway: Gateway,
    destination_gateway: Gateway,
    paths: list[Path],
    by: User,
) -> Transfer:
    """A transfer whose engine ran the stages over `paths` and stored them: what the engine leaves behind."""
    from transfers import stages

    SharingAgreement.objects.get_or_create(trust_a=source, trust_b=destination)
    study_uid = paths[0].parent.name
    transfer = Transfer.objects.create(
        source=source,
        destination=destination,
        source_gateway=source_gateway,
        destination_gateway=destination_gateway,
        study_instance_uids=[study_uid],
        reason="Transferred for surgery",
        requested_by=by,
        status="sending",
    )
    items = retrieved(paths)
    TransferInstance.objects.bulk_create(
        [
            TransferInstance(
                transfer=transfer,
                sop_instance_uid=i.sop_instance_uid,
                study_instance_uid=i.study_instance_uid,
                series_instance_uid=i.series_instance_uid,
                state=InstanceState.RETRIEVED,
            )
            for i in items
        ]
    )
    sent = stages.prepare_batch(transfer, None, items)  # type: ignore[arg-type]
    TransferInstance.objects.filter(transfer=transfer, sop_instance_uid__in=[i.sop_instance_uid for i in sent]).update(
        state=InstanceState.STORED
    )
    return transfer


@pytest.fixture
def study_files(tmp_path, patient) -> list[Path]:
    return make_study(
        tmp_path / "study",
        modality="CT",
        n_instances=3,
        patient=patient,
        nhs_store="other-ids",
        accession_number="ACC2201",
        description="CT head",
        seed=2201,
    )
