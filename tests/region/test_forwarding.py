"""Forwarding rules: what arrives at a trust is copied on to the regional archive as a background transfer."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from audit.context import SYSTEM
from audit.models import AuditEvent
from pulls.models import PullRequest
from region.forwarding import forward_arrival, forwarding_rule_create
from region.models import Forward, ForwardingRule
from tests.helpers import api_as, signed_in
from transfers.models import BULK, InstanceState, Priority, Status, Transfer, TransferInstance

pytestmark = pytest.mark.django_db

CT_STUDY, MR_STUDY = "1.2.826.0.1.3680043.8.498.201", "1.2.826.0.1.3680043.8.498.202"


@pytest.fixture
def arrival(trust_a, trust_b, gateway_a, gateway_b, bob) -> Transfer:
    """A CT and an MR study that B sent to A, both stored at A."""
    transfer = Transfer.objects.create(
        source=trust_b,
        destination=trust_a,
        source_gateway=gateway_b,
        destination_gateway=gateway_a,
        study_instance_uids=[CT_STUDY, MR_STUDY],
        priority=Priority.ROUTINE,
        reason="Follow-up",
        requested_by=bob,
        status=Status.COMPLETED,
        studies=[
            {"study_instance_uid": CT_STUDY, "modalities": ["CT"]},
            {"study_instance_uid": MR_STUDY, "modalities": ["MR"]},
        ],
    )
    for n, study in enumerate((CT_STUDY, MR_STUDY)):
        TransferInstance.objects.create(
            transfer=transfer, sop_instance_uid=f"{study}.{n}", study_instance_uid=study, state=InstanceState.STORED
        )
    return transfer


def rule(trust, archive, user, trigger: str, modality: str = "") -> ForwardingRule:
    return forwarding_rule_create(
        trust=trust, archive=archive, trigger=trigger, modality=modality, user=user, actor=SYSTEM
    )


def test_every_arrival_is_copied_to_the_archive_at_background_priority(arrival, archive, vna, archive_agreements, amir):
    rule(arrival.destination, archive, amir, "every_arrival")

    (forward,) = forward_arrival(transfer_id=arrival.pk)

    copy = forward.transfer
    assert (copy.source, copy.destination, copy.destination_gateway) == (arrival.destination, archive, vna)
    assert copy.study_instance_uids == [CT_STUDY, MR_STUDY]
    assert (copy.priority, copy.queue, copy.status) == (BULK, "bulk", Status.QUEUED)
    assert AuditEvent.objects.filter(detail__transfer=copy.pk, detail__priority=BULK).exists()


def test_a_modality_rule_copies_only_that_modality(arrival, archive, vna, archive_agreements, amir):
    rule(arrival.destination, archive, amir, "modality", "mr")

    (forward,) = forward_arrival(transfer_id=arrival.pk)

    assert forward.transfer.study_instance_uids == [MR_STUDY]


def test_a_trauma_pull_rule_ignores_a_routine_push_and_copies_a_trauma_pull(
    arrival, archive, vna, archive_agreements, amir, alice
):
    rule(arrival.destination, archive, amir, "trauma_pull")
    assert forward_arrival(transfer_id=arrival.pk) == []

    Transfer.objects.filter(pk=arrival.pk).update(priority=Priority.TRAUMA)
    PullRequest.objects.create(
        requesting_trust=arrival.destination,
        source_trust=arrival.source,
        requested_by=alice,
        nhs_number="9434765919",
        family_name="Test",
        given_name="Pat",
        birth_date="1970-01-01",
        sex="F",
        priority=Priority.TRAUMA,
        reason="Polytrauma",
        transfer=arrival,
    )
    (forward,) = forward_arrival(transfer_id=arrival.pk)

    assert forward.transfer.study_instance_uids == [CT_STUDY, MR_STUDY]


def test_an_arrival_is_forwarded_once_however_often_its_end_is_announced(
    arrival, archive, vna, archive_agreements, amir
):
    rule(arrival.destination, archive, amir, "every_arrival")
    rule(arrival.destination, archive, amir, "modality", "CT")

    forward_arrival(transfer_id=arrival.pk)
    forward_arrival(transfer_id=arrival.pk)

    assert Forward.objects.count() == 1
    assert Transfer.objects.filter(priority=BULK).count() == 1
    assert Forward.objects.get().rules.count() == 2


def test_without_an_agreement_nothing_is_copied_and_the_forward_says_why(arrival, archive, vna, amir):
    rule(arrival.destination, archive, amir, "every_arrival")

    (forward,) = forward_arrival(transfer_id=arrival.pk)

    assert forward.transfer is None
    assert "agreement" in forward.error
    assert not Transfer.objects.filter(priority=BULK).exists()


def test_a_failed_arrival_or_a_background_copy_is_never_forwarded(arrival, archive, vna, archive_agreements, amir):
    rule(arrival.destination, archive, amir, "every_arrival")
    Transfer.objects.filter(pk=arrival.pk).update(status=Status.FAILED)
    assert forward_arrival(transfer_id=arrival.pk) == []
    Transfer.objects.filter(pk=arrival.pk).update(status=Status.COMPLETED, priority=BULK)
    assert forward_arrival(transfer_id=arrival.pk) == []


def test_only_the_trusts_imaging_managers_set_its_rules(trust_a, archive, alice, bea):
    for user in (alice, bea):  # a clinician of A; B's imaging manager
        with pytest.raises(PermissionDenied):
            rule(trust_a, archive, user, "every_arrival")


def test_a_rule_forwards_only_to_the_regional_archive(trust_a, trust_b, amir):
    with pytest.raises(ValidationError, match="regional archive"):
        rule(trust_a, trust_b, amir, "every_arrival")


def test_the_api_lists_a_trusts_rules_to_its_managers_and_to_nobody_else(trust_a, archive, amir, bea):
    created = api_as(amir).post(
        "/api/v1/forwarding-rules/",
        {"trust": "RAA", "archive": "Y56", "trigger": "modality", "modality": "CT"},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["description"] == "every CT study that arrives"

    assert api_as(amir).get("/api/v1/forwarding-rules/").json()["count"] == 1
    assert api_as(bea).get("/api/v1/forwarding-rules/").json()["count"] == 0
    assert api_as(bea).get(f"/api/v1/forwarding-rules/{created.json()['id']}/").status_code == 404
    refused = api_as(bea).post(
        "/api/v1/forwarding-rules/", {"trust": "RAA", "archive": "Y56", "trigger": "every_arrival"}, format="json"
    )
    assert refused.status_code == 403

    off = api_as(amir).patch(f"/api/v1/forwarding-rules/{created.json()['id']}/", {"active": False}, format="json")
    assert off.status_code == 200 and off.json()["active"] is False


def test_the_page_adds_a_rule(trust_a, archive, amir):
    client = signed_in(amir)

    page = client.get("/region/forwarding/")
    added = client.post("/region/forwarding/", {"trust": "RAA", "archive": "Y56", "trigger": "every_arrival"})

    assert page.status_code == 200
    assert added.status_code == 302
    assert ForwardingRule.objects.get().describe() == "every arrival"


def test_a_clinician_has_no_forwarding_page(trust_a, alice):
    assert signed_in(alice).get("/region/forwarding/").status_code == 403
