"""Each workflow that exists today, walked end to end, and the audit events it leaves (SPEC section 4).

Workflows that land later (search, transfers, requests, share links) assert their own events; here the
catalogue they will record through is checked to refuse an event missing what the console needs.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client

from audit import catalogue
from audit.codes import ActorType, EventID, EventType, LocalEventType
from audit.context import SYSTEM, token_fingerprint
from audit.services import verify_chain
from directory.models import Gateway, SharingAgreement, Trust
from tests.accounts.test_sign_in import sign_in
from tests.audit.conftest import PATIENT, STUDY, events, last_event
from tests.helpers import api_as, make_token, signed_in

pytestmark = pytest.mark.django_db


# --- signing in -------------------------------------------------------------------------------------


def test_signing_in_and_out_records_who_from_where_and_is_seen_by_their_trust(alice):
    client = Client(HTTP_USER_AGENT="WardPC/2.0", REMOTE_ADDR="10.1.2.3")
    sign_in(client, alice.email)
    client.post("/accounts/logout/")

    signed_in_event, signed_out = events(event_id=EventID.USER_AUTHENTICATION)
    assert (signed_in_event.event_type, signed_out.event_type) == (EventType.LOGIN, EventType.LOGOUT)
    assert signed_in_event.action == "E" and signed_in_event.outcome == 0
    assert signed_in_event.actor_type == ActorType.USER
    assert signed_in_event.actor_user_id == alice.pk
    assert signed_in_event.client_ip == "10.1.2.3"
    assert signed_in_event.user_agent == "WardPC/2.0"
    assert signed_in_event.scope == ["RAA"]
    assert len(signed_in_event.request_id) >= 8


def test_a_failed_password_is_recorded_against_the_account_tried(alice):
    sign_in(Client(), alice.email, password="wrong password")

    (failure,) = events(event_id=EventID.USER_AUTHENTICATION)
    assert failure.outcome == 4
    assert failure.actor_type == ActorType.ANONYMOUS
    assert failure.detail["attempted_email"] == alice.email
    assert failure.scope == ["RAA"]  # trust A's IG officer sees attacks on trust A's accounts


def test_a_wrong_second_factor_is_recorded(alice):
    sign_in(Client(), alice.email, code="000000")

    failure = events(event_id=EventID.USER_AUTHENTICATION, outcome=4)[0]
    assert failure.actor_user_id == alice.pk
    assert failure.detail["step"] == "second_factor"


# --- API tokens -------------------------------------------------------------------------------------


def test_api_token_use_is_recorded_once_per_token_per_interval(alice, settings):
    settings.AUDIT_TOKEN_USE_INTERVAL = 900
    key = make_token(alice)
    client = api_as(alice, token=key)

    for _ in range(3):
        assert client.get("/api/v1/me/").status_code == 200

    (used,) = events(event_type=LocalEventType.API_TOKEN_USED)
    assert used.event_id == EventID.USER_AUTHENTICATION
    assert used.actor_type == ActorType.API_TOKEN
    assert used.actor_user_id == alice.pk
    assert used.actor_ref == token_fingerprint(key)
    assert key not in str(used.canonical())  # the token itself is a secret: never recorded
    assert used.detail == {"method": "GET", "path": "/api/v1/me/"}

    cache.clear()  # the interval has passed
    client.get("/api/v1/me/")
    assert len(events(event_type=LocalEventType.API_TOKEN_USED)) == 2


def test_every_token_use_is_recorded_when_the_interval_is_zero(alice, settings):
    settings.AUDIT_TOKEN_USE_INTERVAL = 0
    client = api_as(alice, token=True)
    client.get("/api/v1/me/")
    client.get("/api/v1/trusts/")

    assert len(events(event_type=LocalEventType.API_TOKEN_USED)) == 2


def test_a_refused_token_is_recorded_once_a_minute_per_address(db):
    client = Client(HTTP_AUTHORIZATION="Token " + "f" * 40, REMOTE_ADDR="203.0.113.9")

    responses = [client.get("/api/v1/me/") for _ in range(5)]

    assert {r.status_code for r in responses} == {401}
    (refused,) = events(event_type=LocalEventType.API_TOKEN_USED)
    assert refused.outcome == 4
    assert refused.actor_type == ActorType.ANONYMOUS
    assert refused.client_ip == "203.0.113.9"
    assert refused.detail["refused"] == "Invalid token."
    assert refused.detail["token"] == token_fingerprint("f" * 40)


def test_a_deactivated_users_token_is_refused_and_recorded(alice):
    client = api_as(alice, token=True)
    alice.is_active = False
    alice.save()

    assert client.get("/api/v1/me/").status_code == 401
    assert last_event().detail["refused"] == "User inactive or deleted."


def test_work_done_with_a_token_names_the_token(rita, trust_a):
    key = make_token(rita)
    client = api_as(rita, token=key)

    client.post("/api/v1/trusts/", {"ods_code": "RCC", "name": "Gamma"}, format="json")

    change = events(event_id=EventID.SECURITY_ALERT)[-1]
    assert change.actor_type == ActorType.API_TOKEN
    assert change.actor_ref == token_fingerprint(key)


# --- the directory ----------------------------------------------------------------------------------


def test_directory_changes_through_the_api_are_recorded_with_their_trusts(rita, trust_a, trust_b):
    client = api_as(rita)
    client.post("/api/v1/trusts/", {"ods_code": "RCC", "name": "Gamma Hospitals"}, format="json")
    gateway = client.post(
        "/api/v1/gateways/",
        {"trust": "RAA", "name": "Edge", "ae_title": "EDGE", "host": "10.0.0.5", "port": 104},
        format="json",
    )
    client.post("/api/v1/agreements/", {"trust_a": "RAA", "trust_b": "RBB"}, format="json")

    assert gateway.status_code == 201
    created_trust, created_gateway, *agreement = events(event_id=EventID.SECURITY_ALERT)
    assert (created_trust.event_type, created_trust.action, created_trust.trust) == ("110129", "C", "RCC")
    assert (created_gateway.event_type, created_gateway.trust) == ("110128", "RAA")
    assert {e.trust for e in agreement} == {"RAA", "RBB"}
    assert all(e.actor_user_id == rita.pk for e in events())


def test_gateway_secrets_are_never_copied_into_the_trail(amir, gateway_a):
    api_as(amir).patch(f"/api/v1/gateways/{gateway_a.pk}/", {"dicomweb_password": "hunter2-secret"}, format="json")

    assert "hunter2-secret" not in str(last_event().canonical())


# --- staff and roles --------------------------------------------------------------------------------


def test_staff_and_role_changes_are_recorded(rita, trust_a, trust_b, bob):
    client = api_as(rita)
    client.post("/api/v1/users/", {"email": "new@b.example", "full_name": "New Person"}, format="json")
    membership = client.post(
        "/api/v1/memberships/", {"user": "new@b.example", "trust": "RBB", "role": "clinician"}, format="json"
    )
    client.delete(f"/api/v1/memberships/{membership.json()['id']}/")
    client.patch(f"/api/v1/users/{bob.pk}/", {"is_active": False}, format="json")

    invited, granted, revoked, deactivated = events(event_id=EventID.SECURITY_ALERT)
    assert (invited.event_type, invited.action) == (EventType.USER_SECURITY_ATTRIBUTES_CHANGED, "C")
    assert (granted.event_type, granted.action, granted.trust) == (EventType.SECURITY_ROLES_CHANGED, "C", "RBB")
    assert (revoked.action, revoked.trust) == ("D", "RBB")
    assert deactivated.detail == {"user": bob.email, "is_active": False}
    assert deactivated.scope == ["RBB"]  # bob's trust sees it, though rita acted


# --- the admin --------------------------------------------------------------------------------------


def test_directory_changes_in_the_admin_are_recorded(rita, trust_a, trust_b, gateway_a):
    admin = signed_in(rita)
    admin.post(
        "/admin/directory/trust/add/",
        {
            "ods_code": "RDD",
            "name": "Delta",
            "kind": "trust",
            "reconcile_patient_id": "on",
            "share_link_max_hours": "336",
            "gateways-TOTAL_FORMS": "0",
            "gateways-INITIAL_FORMS": "0",
        },
    )
    admin.post(
        f"/admin/directory/gateway/{gateway_a.pk}/change/",
        {
            "trust": trust_a.pk,
            "name": "Main PACS",
            "ae_title": "ALPHA_PACS",
            "host": "10.9.8.7",
            "port": 4242,
            "retrieve_method": "c-move",
            "store_method": "c-store",
            "query_method": "c-find",
            "max_concurrency": 4,
            "verify_tls": "on",
        },
    )
    agreement = SharingAgreement.objects.create(trust_a=trust_a, trust_b=trust_b)
    admin.post(f"/admin/directory/sharingagreement/{agreement.pk}/delete/", {"post": "yes"})

    assert Trust.objects.filter(ods_code="RDD").exists()
    assert Gateway.objects.get(pk=gateway_a.pk).host == "10.9.8.7"
    added, changed, deleted = events(event_id=EventID.SECURITY_ALERT, detail__via="admin")
    assert (added.action, added.trust, added.event_type) == ("C", "RDD", "110129")
    assert (changed.action, changed.trust, changed.event_type) == ("U", "RAA", "110128")
    assert changed.detail["change"] == [{"changed": {"fields": ["Host"]}}]
    assert (deleted.action, deleted.trust, deleted.peer_trust) == ("D", "RAA", "RBB")
    assert {added.actor_user_id, changed.actor_user_id, deleted.actor_user_id} == {rita.pk}


# --- the audit trail's own use ----------------------------------------------------------------------


def test_reading_exporting_and_verifying_the_trail_are_themselves_recorded(ada):
    client = api_as(ada)
    client.get("/api/v1/audit-events/", {"nhs_number": PATIENT})
    client.get("/api/v1/audit-events/", {"format": "csv"})
    client.post("/api/v1/audit-events/verify/")

    _signed_in, read, export_used, exported, verified = events(actor_user=ada)
    assert (read.event_id, read.action, read.nhs_number) == (EventID.AUDIT_LOG_USED, "R", PATIENT)
    assert (export_used.event_id, export_used.detail["exported"]) == (EventID.AUDIT_LOG_USED, True)
    assert (exported.event_id, exported.detail["format"]) == (EventID.EXPORT, "csv")
    assert (verified.event_id, verified.action, verified.event_type) == ("110101", "E", LocalEventType.CHAIN_VERIFIED)


# --- workflows still to come: the catalogue they record through ---------------------------------------


@pytest.mark.parametrize("spec", catalogue.ALL.values(), ids=list(catalogue.ALL))
def test_every_catalogued_workflow_records_a_valid_event_and_refuses_one_missing_its_needs(spec):
    full = {
        "actor": SYSTEM,
        "trust": "RAA",
        "peer_trust": "RBB",
        "nhs_number": PATIENT,
        "study_uids": [STUDY],
        "reason": "follow-up of a head injury",
    }

    event = spec.record(**full)

    assert (event.event_id, event.action, event.event_type) == (spec.event_id, spec.action, spec.event_type)
    assert event.event_id in EventID.values
    for need in spec.needs - {"actor"}:
        with pytest.raises(ValueError, match=need):
            spec.record(**{**full, need: ""})
    assert verify_chain().ok


def test_emergency_auto_approval_is_a_security_alert_with_emergency_override_started():
    event = catalogue.EMERGENCY_AUTO_APPROVAL.record(
        actor=SYSTEM, trust="RAA", peer_trust="RBB", nhs_number=PATIENT, reason="trauma call: CT head"
    )

    assert (event.event_id, event.event_type, event.action) == ("110113", "110127", "E")
    assert event.reason == "trauma call: CT head"
    assert event.scope == ["RAA", "RBB"]
