"""An exchanged study without a PACS: a transfer A → B that has ended, its ledger, and the manifest made
from the synthetic study's own headers (parsed by the same functions that read a C-FIND answer)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom import dcmread

from accounts.models import User
from accounts.roles import Role
from dicomkit.queries import instance_from, series_from, study_from
from dicomkit.sim.synthetic import SyntheticPatient, make_study
from directory.models import Gateway, Trust
from manifests.models import StudyManifest
from manifests.services import Listing, manifest_create
from tests.helpers import grant, make_user
from tests.transfers import conftest as transfer_fixtures
from transfers.models import InstanceState, Status, Transfer, TransferInstance

# The transfer tests' real PACS pair, study and worker (a pair of Orthancs of this directory's own).
pacs_pair = transfer_fixtures.pacs_pair
ct_study = transfer_fixtures.ct_study
transfer_worker = transfer_fixtures.transfer_worker

NHS = "9434765919"
PATIENT = SyntheticPatient(
    nhs_number=NHS, family_name="Jones", given_name="Aoife", birth_date="19800203", sex="F", local_id="RBB1234567"
)


def listing_of(paths: list[Path]) -> Listing:
    headers = [dcmread(p, stop_before_pixels=True) for p in paths]
    series = {ds.SeriesInstanceUID: series_from(ds) for ds in headers}
    return Listing(study_from(headers[0]), list(series.values()), [instance_from(ds) for ds in headers])


@pytest.fixture
def carol(db) -> User:
    """A clinician of a trust with no part in the exchange: must see nothing of it."""
    trust_c = Trust.objects.create(ods_code="RCC", name="Gamma Community Hospital")
    return grant(make_user("carol@c.example"), trust_c, Role.CLINICIAN)


@pytest.fixture(scope="session")
def mr_study(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three MR series of a made-up patient whose NHS number is in Other Patient IDs."""
    folder = tmp_path_factory.mktemp("manifest-study")
    return make_study(folder, modality="MR", n_instances=6, patient=PATIENT, nhs_store="other-ids", rows=32, columns=32)


@pytest.fixture
def exchange(alice, trust_a, trust_b, gateway_a, gateway_b) -> Callable[..., StudyManifest]:
    """exchange(paths, source=A, destination=B): a completed transfer of the study and its manifest."""

    def make(paths: list[Path], source: Trust = trust_a, destination: Trust = trust_b) -> StudyManifest:
        listing = listing_of(paths)
        study_uid = listing.study.study_instance_uid
        gateways = {g.trust_id: g for g in Gateway.objects.filter(trust__in=[source, destination])}
        transfer = Transfer.objects.create(
            source=source,
            destination=destination,
            source_gateway=gateways[source.pk],
            destination_gateway=gateways[destination.pk],
            study_instance_uids=[study_uid],
            priority="urgent",
            reason="Follow-up at the tertiary centre",
            requested_by=alice,
            status=Status.COMPLETED,
            nhs_number=NHS,
        )
        TransferInstance.objects.bulk_create(
            TransferInstance(
                transfer=transfer,
                sop_instance_uid=i.sop_instance_uid,
                study_instance_uid=study_uid,
                series_instance_uid=i.series_instance_uid,
                state=InstanceState.STORED,
            )
            for i in listing.instances
        )
        delivered = {i.sop_instance_uid for i in listing.instances}
        manifest = manifest_create(transfer=transfer, listing=listing, delivered=delivered)
        assert manifest is not None
        return manifest

    return make
