"""Issue #19: the reconciliation assistant and the hold reasons. The destination's PACS is the simulated
one holding trust A's studies (Siobhán keyed by her NHS number alone, Rhys by his local MRN)."""

from __future__ import annotations

import pytest

from dicomkit.models import Study
from reconciliation import services
from reconciliation.models import StudyReconciliation
from tests.exchange.conftest import NHS_RHYS, NHS_SIOBHAN, RHYS_MRN, alpha_pacs, pacs_studies, sim_gateway, studies  # noqa: F401 - fixtures
from tests.helpers import signed_in
from transfers.models import InstanceState, Status, Transfer, TransferInstance

pytestmark = pytest.mark.django_db


class IndexOf:
    """A gateway client answering C-FIND with the studies given."""

    def __init__(self, *found: Study) -> None:
        self.found = list(found)

    def find_studies(self, query):
        return self.found


def test_a_patient_the_pacs_keys_by_nhs_number_is_a_local_patient_not_no_match():
    """ "No local patient has this NHS number" was shown for a patient the trust's own PACS returned by that
    NHS number: the PACS held them under PatientID = NHS number (issuer NHS), with no local MRN."""
    held_locally = Study(
        "1.2.1",
        patient_name="O^S",
        patient_id=NHS_SIOBHAN,
        issuer_of_patient_id="NHS",
        nhs_number=NHS_SIOBHAN,
        birth_date="19800214",
    )
    found = services.find_local_patients(
        IndexOf(held_locally), nhs_number=NHS_SIOBHAN, issuer="RAA_MRN", exclude_study="1.2.9"
    )
    assert [(p.patient_id, p.issuer, set(p.birth_dates)) for p in found] == [(NHS_SIOBHAN, "NHS", {"19800214"})]


@pytest.fixture
def arrivals(trust_a, trust_b, sim_gateway, gateway_b, alice):  # noqa: F811
    """Two held studies of one patient (and one of another) in a transfer from B to A."""
    transfer = Transfer.objects.create(
        source=trust_b,
        destination=trust_a,
        source_gateway=gateway_b,
        destination_gateway=sim_gateway,
        study_instance_uids=["1.2.10", "1.2.11", "1.2.12"],
        reason="Review",
        requested_by=alice,
        status=Status.AWAITING_RECONCILIATION,
    )
    items = []
    for uid, number, name, born in (
        ("1.2.10", NHS_RHYS, "DAVIES^RHYS", "19541103"),
        ("1.2.11", NHS_RHYS, "DAVIES^RHYS", "19541103"),
        ("1.2.12", "9434765919", "Jones^Aoife", "19800203"),
    ):
        TransferInstance.objects.create(
            transfer=transfer, sop_instance_uid=f"{uid}.1", study_instance_uid=uid, state=InstanceState.HELD
        )
        items.append(
            StudyReconciliation.objects.create(
                transfer=transfer,
                destination=trust_a,
                study_instance_uid=uid,
                outcome="held",
                hold_reason="birth_date_conflict",
                nhs_number=number,
                patient_name=name,
                birth_date=born,
                sex="F",
                source_patient_id="RBB77",
                source_issuer="RBB_MRN",
            )
        )
    return items


def test_the_assistant_shows_local_candidates_with_their_differences(amir, arrivals):
    """No candidates were offered, and the screens showed raw DICOM (`Khan^Priya`, `19921230`)."""
    html = signed_in(amir).get(f"/reconciliation/{arrivals[0].pk}/").content.decode()
    assert f'data-candidate="{RHYS_MRN}"' in html and "Found by" in html
    assert "DAVIES, RHYS" in html and "3 Nov 1954" in html and "19541103" not in html
    assert 'portal-differs">Male<' in html  # the sex differs (F sent, M held) and is marked
    assert 'portal-differs"><span class="nhs-number">' not in html  # the NHS number agrees: not marked
    assert "Also file the 1 other held study of this patient from transfer" in html
    queue = signed_in(amir).get("/reconciliation/").content.decode()
    assert "DAVIES, RHYS" in queue and "DAVIES^RHYS" not in queue


def test_one_decision_files_every_held_study_of_the_patient_in_the_transfer(amir, arrivals, monkeypatch):
    """One item per study, no bulk action."""
    monkeypatch.setattr(services, "_enqueue_forward", lambda item_id, queue: None)
    response = signed_in(amir).post(
        f"/reconciliation/{arrivals[0].pk}/resolve/",
        {"patient_id": RHYS_MRN, "issuer": "RAA_MRN", "all_of_patient": "on"},
        follow=True,
    )
    assert "2 studies filed under" in response.content.decode()
    outcomes = [StudyReconciliation.objects.get(pk=i.pk) for i in arrivals]
    assert [(i.outcome, i.patient_id) for i in outcomes] == [
        ("resolved", RHYS_MRN),
        ("resolved", RHYS_MRN),
        ("held", ""),
    ]
