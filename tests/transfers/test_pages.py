"""The transfer pages: the push form, the list with its tabs, the detail page with cancel and retry.

No DICOM peer: pytest-django's test transaction never commits, so transfer_create's on_commit enqueue
never runs and nothing is sent."""

from __future__ import annotations

import pytest

from accounts.models import User
from accounts.roles import Role
from audit.models import AuditEvent
from directory.models import Gateway, SharingAgreement, Trust
from tests.helpers import grant, make_user, signed_in
from transfers import services
from transfers.models import InstanceState, Status, Transfer, TransferInstance

STUDY = "1.2.826.0.1.3680043.8.498.10"
OTHER_STUDY = "1.2.826.0.1.3680043.8.498.11"
PUSH_URL = "/trusts/RAA/transfers/new/"


@pytest.fixture
def pages_gateways(trust_a, trust_b) -> tuple[Gateway, Gateway]:
    a = Gateway.objects.create(
        trust=trust_a, name="Edge", ae_title="ALPHA_EDGE", host="127.0.0.1", port=4250, retrieve_method="c-get"
    )
    b = Gateway.objects.create(trust=trust_b, name="Edge", ae_title="BETA_EDGE", host="127.0.0.1", port=4251)
    return a, b


@pytest.fixture
def unrelated_trust(db) -> Trust:
    """A trust with a gateway but no agreement with A."""
    trust = Trust.objects.create(ods_code="RDD", name="Delta Unrelated Hospital")
    Gateway.objects.create(trust=trust, name="Edge", ae_title="DELTA_EDGE", host="127.0.0.1", port=4252)
    return trust


@pytest.fixture
def alex(trust_a) -> User:
    """Another clinician of A: may see alice's transfers, may not cancel them."""
    return grant(make_user("alex@a.example"), trust_a, Role.CLINICIAN)


@pytest.fixture
def transfer(alice, trust_a, trust_b, pages_gateways, agreement) -> Transfer:
    return services.transfer_create(
        source=trust_a,
        destination=trust_b,
        study_instance_uids=[STUDY],
        priority="urgent",
        reason="Head injury, neurosurgical opinion",
        requested_by=alice,
    )


def _push(client, **overrides):
    data = {
        "confirm": "1",
        "study_instance_uids": [STUDY, OTHER_STUDY],
        "destination_trust": Trust.objects.get(ods_code="RBB").pk,
        "priority": "trauma",
        "reason": "Polytrauma transfer to the major trauma centre",
    }
    data.update(overrides)
    return client.post(PUSH_URL, data)


def test_the_push_form_creates_a_transfer_for_alice(alice, pages_gateways, agreement):
    client = signed_in(alice)
    chosen = client.post(PUSH_URL, {"study_instance_uids": [STUDY, OTHER_STUDY]})
    assert chosen.status_code == 200
    assert STUDY in chosen.content.decode() and OTHER_STUDY in chosen.content.decode()
    assert not Transfer.objects.exists()

    response = _push(client)
    transfer = Transfer.objects.get()
    assert response.status_code == 302
    assert response.url == f"/transfers/{transfer.pk}/"
    assert transfer.requested_by == alice
    assert transfer.study_instance_uids == [STUDY, OTHER_STUDY]
    assert (transfer.source.ods_code, transfer.destination.ods_code) == ("RAA", "RBB")
    assert (transfer.priority, transfer.status) == ("trauma", Status.QUEUED)
    assert AuditEvent.objects.filter(detail__transfer=transfer.pk).exists()
    page = client.get(response.url).content.decode()
    assert "Polytrauma transfer" in page and "Trauma" in page and STUDY in page


def test_errors_show_on_the_form_and_create_nothing(alice, pages_gateways, agreement):
    client = signed_in(alice)
    no_reason = _push(client, reason="  ")
    assert no_reason.status_code == 400
    assert "This field is required" in no_reason.content.decode()
    bad_uid = _push(client, study_instance_uids=["not-a-uid"])
    assert bad_uid.status_code == 400
    assert "Not a DICOM UID" in bad_uid.content.decode()
    no_study = _push(client, study_instance_uids=[])
    assert "Choose at least one study" in no_study.content.decode()
    assert not Transfer.objects.exists()


def test_destinations_exclude_trusts_without_an_agreement(alice, trust_b, pages_gateways, agreement, unrelated_trust):
    trust_e = Trust.objects.create(ods_code="REE", name="Epsilon One Way")
    SharingAgreement.objects.create(
        trust_a=trust_e, trust_b=Trust.objects.get(ods_code="RAA"), a_to_b=True, b_to_a=False
    )
    client = signed_in(alice)
    page = client.post(PUSH_URL, {"study_instance_uids": [STUDY]}).content.decode()
    assert "Beta District General" in page
    assert "Delta Unrelated Hospital" not in page
    assert "Epsilon One Way" not in page  # E may send to A, not A to E
    refused = _push(client, destination_trust=unrelated_trust.pk)
    assert refused.status_code == 400
    assert "Select a valid choice" in refused.content.decode()
    assert not Transfer.objects.exists()


def test_an_inactive_agreement_is_no_destination(alice, pages_gateways, agreement):
    SharingAgreement.objects.filter(pk=agreement.pk).update(active=False)
    page = signed_in(alice).post(PUSH_URL, {"study_instance_uids": [STUDY]}).content.decode()
    assert "Beta District General" not in page


def test_only_clinicians_of_the_source_may_push(amir, bob, pages_gateways, agreement):
    assert _push(signed_in(amir)).status_code == 403
    assert _push(signed_in(bob)).status_code == 404
    assert not Transfer.objects.exists()


def test_other_trusts_get_404_on_the_detail_page(transfer, bob, unrelated_trust):
    outsider = grant(make_user("dan@d.example"), unrelated_trust, Role.CLINICIAN)
    assert signed_in(outsider).get(f"/transfers/{transfer.pk}/").status_code == 404
    assert signed_in(outsider).post(f"/transfers/{transfer.pk}/cancel/").status_code == 404
    assert f'href="/transfers/{transfer.pk}/"' not in signed_in(outsider).get("/transfers/").content.decode()


def test_bob_of_another_trust_gets_404_on_alices_transfer(alice, bob, trust_a, pages_gateways):
    """With no agreement involving B, a transfer from A to somewhere else is invisible to bob."""
    trust_c = Trust.objects.create(ods_code="RCX", name="Gamma")
    gateway_c = Gateway.objects.create(trust=trust_c, name="Edge", ae_title="GAMMA_EDGE", host="127.0.0.1", port=4253)
    transfer = Transfer.objects.create(
        source=trust_a,
        destination=trust_c,
        source_gateway=pages_gateways[0],
        destination_gateway=gateway_c,
        study_instance_uids=[STUDY],
        reason="Follow-up",
        requested_by=alice,
    )
    assert signed_in(alice).get(f"/transfers/{transfer.pk}/").status_code == 200
    assert signed_in(bob).get(f"/transfers/{transfer.pk}/").status_code == 404


def test_the_destination_sees_it_in_incoming(transfer, bob, alice):
    incoming = signed_in(bob).get("/transfers/", {"direction": "incoming"}).content.decode()
    assert f'href="/transfers/{transfer.pk}/"' in incoming
    outgoing = signed_in(bob).get("/transfers/", {"direction": "outgoing"}).content.decode()
    assert f'href="/transfers/{transfer.pk}/"' not in outgoing
    mine = signed_in(alice).get("/transfers/", {"direction": "outgoing"}).content.decode()
    assert f'href="/transfers/{transfer.pk}/"' in mine
    assert signed_in(bob).get(f"/transfers/{transfer.pk}/").status_code == 200


def test_the_status_filter(transfer, alice):
    client = signed_in(alice)
    link = f'href="/transfers/{transfer.pk}/"'
    assert link in client.get("/transfers/", {"status": "queued"}).content.decode()
    assert link not in client.get("/transfers/", {"status": "completed"}).content.decode()
    assert link in client.get("/transfers/", {"status": "nonsense"}).content.decode()


def test_the_detail_page_shows_progress_and_errors(transfer, alice):
    TransferInstance.objects.bulk_create(
        [
            TransferInstance(
                transfer=transfer,
                sop_instance_uid="1.2.3.1",
                study_instance_uid=STUDY,
                size=2_500_000,
                state=InstanceState.STORED,
            ),
            TransferInstance(
                transfer=transfer,
                sop_instance_uid="1.2.3.2",
                study_instance_uid=STUDY,
                size=1_000_000,
                state=InstanceState.STORED,
            ),
            TransferInstance(
                transfer=transfer,
                sop_instance_uid="1.2.3.3",
                study_instance_uid=STUDY,
                state=InstanceState.FAILED,
                last_error="0xA700 out of resources",
            ),
            TransferInstance(transfer=transfer, sop_instance_uid="1.2.3.4", study_instance_uid=STUDY),
        ]
    )
    page = signed_in(alice).get(f"/transfers/{transfer.pk}/").content.decode()
    assert '<span data-field="instances_done">2</span> of <span data-field="instances_total">4</span>' in page
    assert '<span data-field="megabytes">3.5</span> MB' in page
    assert '<span data-field="instances_failed">1</span>' in page
    assert "0xA700 out of resources" in page
    assert f'data-api-url="/api/v1/transfers/{transfer.pk}/"' in page
    assert '<script src="/static/transfers/progress.js" defer></script>' in page
    assert "Head injury, neurosurgical opinion" in page and "Urgent" in page


def test_cancel_by_the_requester_works(transfer, alice):
    client = signed_in(alice)
    assert f'action="/transfers/{transfer.pk}/cancel/"' in client.get(f"/transfers/{transfer.pk}/").content.decode()
    response = client.post(f"/transfers/{transfer.pk}/cancel/")
    assert response.status_code == 302
    transfer.refresh_from_db()
    assert transfer.status == Status.CANCELLED
    page = client.get(response.url).content.decode()
    assert "cancelled" in page
    assert f'action="/transfers/{transfer.pk}/retry/"' in page
    assert f'action="/transfers/{transfer.pk}/cancel/"' not in page


def test_cancel_by_an_unrelated_clinician_is_refused(transfer, alex, bob):
    for user in (alex, bob):
        client = signed_in(user)
        assert (
            f'action="/transfers/{transfer.pk}/cancel/"'
            not in client.get(f"/transfers/{transfer.pk}/").content.decode()
        )
        assert client.post(f"/transfers/{transfer.pk}/cancel/").status_code == 403
    transfer.refresh_from_db()
    assert transfer.status == Status.QUEUED


def test_an_imaging_manager_of_the_destination_may_cancel(transfer, bea):
    assert signed_in(bea).post(f"/transfers/{transfer.pk}/cancel/").status_code == 302
    transfer.refresh_from_db()
    assert transfer.status == Status.CANCELLED


def test_retry_after_cancel_and_a_second_cancel_is_a_message(transfer, alice):
    client = signed_in(alice)
    client.post(f"/transfers/{transfer.pk}/cancel/")
    again = client.post(f"/transfers/{transfer.pk}/cancel/", follow=True)
    assert "already ended" in again.content.decode()
    assert client.post(f"/transfers/{transfer.pk}/retry/").status_code == 302
    transfer.refresh_from_db()
    assert transfer.status == Status.QUEUED
    assert client.get(f"/transfers/{transfer.pk}/retry/").status_code == 405


def test_the_nav_links_to_transfers(alice):
    assert 'href="/transfers/"' in signed_in(alice).get("/transfers/").content.decode()


@pytest.fixture
def one_study_found(monkeypatch):
    """The search page's PACS query, answered without a PACS."""
    from types import SimpleNamespace

    from exchange import services as exchange_services

    study = SimpleNamespace(
        study_instance_uid=STUDY,
        patient_name="DAVIES^Rhys",
        nhs_number="9990000026",
        birth_date="19541103",
        sex="M",
        study_date="20230520",
        modalities=["MR"],
        description="MR head",
        accession_number="ACC0001",
        series_count=2,
        instance_count=5,
    )
    row = exchange_services.StudyRow(study, "RAA1234567")
    monkeypatch.setattr(exchange_services, "study_search", lambda **kwargs: [row])


def test_search_results_offer_a_checkbox_per_study_to_clinicians(alice, amir, one_study_found):
    page = signed_in(alice).get("/trusts/RAA/studies/", {"patient_name": "*"}).content.decode()
    assert f'action="{PUSH_URL}"' in page
    assert f'name="study_instance_uids" value="{STUDY}" form="push-form"' in page
    assert "Send the selected studies to another trust" in page
    manager_page = signed_in(amir).get("/trusts/RAA/studies/", {"patient_name": "*"}).content.decode()
    assert "MR head" in manager_page
    assert "Send to another trust" not in manager_page


def test_a_failed_instance_is_listed_once_even_after_a_retry(transfer, alice):
    """*Retry* listed the 20 UIDs twice (40 rows): the engine names each failed instance in `errors` and the
    ledger says the same, and the page showed both."""
    TransferInstance.objects.create(
        transfer=transfer,
        sop_instance_uid="1.2.3.9",
        study_instance_uid=STUDY,
        state=InstanceState.FAILED,
        last_error="0x0111 Duplicate SOP Instance",
    )
    Transfer.objects.filter(pk=transfer.pk).update(
        status=Status.COMPLETED_WITH_ERRORS,
        errors=[{"sop_instance_uid": "1.2.3.9", "study_instance_uid": STUDY, "error": "0x0111 Duplicate SOP Instance"}],
    )
    page = signed_in(alice).get(f"/transfers/{transfer.pk}/").content.decode()
    table = page.split('id="transfer-errors"')[1].split("</table>")[0]
    assert table.count("1.2.3.9") == 1
