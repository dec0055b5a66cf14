"""The imaging manager's operations view: queues per gateway, stuck and failed transfers, bulk retry and
cancel — each transfer permission-checked; another trust's transfers do not exist for an outsider."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import User
from accounts.roles import Role
from audit.models import AuditEvent
from tests.helpers import api_as, grant, make_user, signed_in
from transfers import services
from transfers.models import Status, Transfer

from .conftest import STUDY

pytestmark = pytest.mark.django_db
PAGE = "/transfers/operations/"
API = "/api/v1/transfers/operations/"
BULK = "/api/v1/transfers/bulk/"


@pytest.fixture
def cody(trust_c) -> User:
    """The imaging manager of trust C: runs C's gateways, has no business with A's or B's transfers."""
    return grant(make_user("cody@c.example"), trust_c, Role.IMAGING_MANAGER)


@pytest.fixture
def make(alice, trust_a, trust_b, cget_gateway_a, cget_gateway_b, agreement):
    def make(status: str, **fields) -> Transfer:
        transfer = services.transfer_create(
            source=trust_a,
            destination=trust_b,
            study_instance_uids=[STUDY],
            priority="urgent",
            reason="Head injury, neurosurgical opinion",
            requested_by=alice,
        )
        Transfer.objects.filter(pk=transfer.pk).update(status=status, **fields)
        transfer.refresh_from_db()
        return transfer

    return make


@pytest.fixture
def desk(make, settings):
    """Two queued, one running with a fresh heartbeat, one stuck, failures this week and last month."""
    settings.TRANSFER_LEASE_SECONDS = 60
    now = timezone.now()
    hour_ago = now - timedelta(hours=1)
    return {
        "queued_old": make(Status.QUEUED),
        "queued_new": make(Status.QUEUED),
        "running": make(Status.SENDING, heartbeat_at=now, lease_owner="w1"),
        "stuck": make(Status.RETRIEVING, heartbeat_at=now - timedelta(minutes=5), lease_owner="w2"),
        "failed": make(Status.FAILED, completed_at=hour_ago, errors=[{"error": "BETA_EDGE refused"}]),
        "partial": make(Status.COMPLETED_WITH_ERRORS, completed_at=hour_ago),
        "old_failure": make(Status.FAILED, completed_at=now - timedelta(days=30)),
        "done": make(Status.COMPLETED, completed_at=hour_ago),
    }


def test_the_manager_sees_queues_stuck_and_recent_failures(desk, bea, cget_gateway_b):
    Transfer.objects.filter(pk=desk["queued_old"].pk).update(created_at=timezone.now() - timedelta(hours=2))

    body = api_as(bea).get(API).json()

    (gateway,) = body["gateways"]  # bea manages B: B's gateway only
    assert (gateway["trust"], gateway["ae_title"], gateway["queued"], gateway["running"]) == ("RBB", "BETA_EDGE", 2, 2)
    oldest = Transfer.objects.get(pk=desk["queued_old"].pk).created_at
    assert gateway["oldest_waiting"].replace("Z", "+00:00") == oldest.isoformat()
    assert gateway["slots_in_use"] == 0 and gateway["max_concurrency"] == 4
    assert [t["id"] for t in body["stuck"]] == [desk["stuck"].pk]
    assert {t["id"] for t in body["failed_recently"]} == {desk["failed"].pk, desk["partial"].pk}

    page = signed_in(bea).get(PAGE)
    assert page.status_code == 200
    html = page.content.decode()
    assert "BETA_EDGE" in html and "BETA_EDGE refused" in html
    assert f'value="{desk["stuck"].pk}"' in html and f'value="{desk["old_failure"].pk}"' not in html


def test_the_manager_sees_what_holds_the_gateways_connections_and_what_waits(bea, cget_gateway_b):
    from directory import slots

    cget_gateway_b.max_concurrency = 2
    cget_gateway_b.save()
    assert slots.acquire([cget_gateway_b.pk], "run", work="transfer", subject="transfer 1")
    assert slots.acquire([cget_gateway_b.pk], "copy", work="staging", subject="share link 1")
    assert not slots.acquire([cget_gateway_b.pk], "file", work="filing", subject="second opinion 1")

    (gateway,) = api_as(bea).get(API).json()["gateways"]

    assert gateway["slots_in_use"] == 2 and gateway["in_use_by_work"] == {"transfer": 1, "staging": 1}
    assert gateway["waiting"] == 1
    html = signed_in(bea).get(PAGE).content.decode()
    assert "2 / 2" in html and "1 transfer, 1 staging" in html and "1 waiting" in html


def test_the_source_manager_sees_the_same_transfers_from_their_side(desk, amir):
    body = api_as(amir).get(API).json()
    assert [g["trust"] for g in body["gateways"]] == ["RAA"]
    assert [t["id"] for t in body["stuck"]] == [desk["stuck"].pk]


def test_a_manager_of_another_trust_sees_none_of_them(desk, cody):
    body = api_as(cody).get(API).json()
    assert body == {"gateways": [], "stuck": [], "failed_recently": []}
    assert desk["stuck"].source.ods_code not in signed_in(cody).get(PAGE).content.decode().split("<h1>")[1]


def test_clinicians_have_no_operations_view_or_link(desk, alice, amir):
    assert api_as(alice).get(API).status_code == 403
    assert signed_in(alice).get(PAGE).status_code == 403
    assert 'href="/transfers/operations/"' not in signed_in(alice).get("/transfers/").content.decode()
    assert 'href="/transfers/operations/"' in signed_in(amir).get("/transfers/").content.decode()


def test_bulk_retry_from_the_page_queues_each_and_audits_each(desk, amir, django_capture_on_commit_callbacks):
    chosen = [desk["failed"].pk, desk["partial"].pk]
    with django_capture_on_commit_callbacks() as enqueued:
        response = signed_in(amir).post(PAGE, {"action": "retry", "transfer": chosen})

    assert response.status_code == 302
    assert set(Transfer.objects.filter(pk__in=chosen).values_list("status", flat=True)) == {Status.QUEUED}
    assert len(enqueued) == 2  # each goes back on its queue once committed
    retries = AuditEvent.objects.filter(event_id="110102", detail__retry=True)
    assert sorted(e.detail["transfer"] for e in retries) == sorted(chosen)
    assert all(e.actor_label == "amir@a.example" for e in retries)


def test_bulk_cancel_through_the_api_stops_a_stuck_transfer(desk, bea):
    response = api_as(bea).post(BULK, {"action": "cancel", "transfers": [desk["stuck"].pk]}, format="json")

    assert response.status_code == 200, response.json()
    assert [t["status"] for t in response.json()] == ["cancelled"]
    assert Transfer.objects.get(pk=desk["stuck"].pk).status == Status.CANCELLED


def test_one_transfer_that_cannot_change_changes_none(desk, bea):
    chosen = [desk["queued_old"].pk, desk["done"].pk]
    response = api_as(bea).post(BULK, {"action": "cancel", "transfers": chosen}, format="json")

    assert response.status_code == 400
    assert f"{desk['done'].pk}: The transfer has already ended" in str(response.json())
    assert Transfer.objects.get(pk=desk["queued_old"].pk).status == Status.QUEUED
    assert not AuditEvent.objects.filter(detail__change="cancelled").exists()


def test_a_manager_of_another_trust_gets_404_and_changes_nothing(desk, cody):
    chosen = [desk["failed"].pk]
    assert api_as(cody).post(BULK, {"action": "retry", "transfers": chosen}, format="json").status_code == 404
    assert signed_in(cody).post(PAGE, {"action": "retry", "transfer": chosen}).status_code == 404
    assert Transfer.objects.get(pk=desk["failed"].pk).status == Status.FAILED


def test_one_unknown_id_among_known_ones_is_404_for_all(desk, bea):
    chosen = [desk["queued_old"].pk, 999999]
    assert api_as(bea).post(BULK, {"action": "cancel", "transfers": chosen}, format="json").status_code == 404
    assert Transfer.objects.get(pk=desk["queued_old"].pk).status == Status.QUEUED


def test_a_clinician_who_did_not_ask_for_it_may_not_bulk_cancel_it(desk, trust_a):
    alex = grant(make_user("alex@a.example"), trust_a, Role.CLINICIAN)
    response = api_as(alex).post(BULK, {"action": "cancel", "transfers": [desk["queued_old"].pk]}, format="json")
    assert response.status_code == 403
    assert Transfer.objects.get(pk=desk["queued_old"].pk).status == Status.QUEUED


@pytest.mark.parametrize(
    "body",
    [{"action": "delete", "transfers": [1]}, {"action": "cancel", "transfers": []}, {"action": "cancel"}],
)
def test_bad_bulk_requests_are_refused_clearly(desk, bea, body):
    response = api_as(bea).post(BULK, body, format="json")
    assert response.status_code == 400 and response.json()
    assert Transfer.objects.filter(status=Status.CANCELLED).count() == 0
