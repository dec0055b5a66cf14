"""API tokens never give more than a signed-in session with a second factor (issue #17 item 2)."""

from __future__ import annotations

import io
from datetime import timedelta
from types import SimpleNamespace

import pytest
from allauth.mfa.models import Authenticator
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.models import ApiToken, User
from accounts.tokens import key_digest
from audit.codes import EventType
from audit.models import AuditEvent
from tests.helpers import api_as, make_token, signed_in

pytestmark = pytest.mark.django_db

SEARCH = "/api/v1/trusts/RAA/studies/?nhs_number=9434765919"


def token_client(key: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Token {key}")


def created_key(out: io.StringIO) -> str:
    return out.getvalue().split()[2]  # "Generated token <key> for user <email>"


# --- the defect: a user without a second factor searched patients with a token ---------------------


def test_drf_create_token_refuses_a_user_without_a_second_factor(no_mfa_user):
    with pytest.raises(CommandError, match="second factor"):
        call_command("drf_create_token", no_mfa_user.email, stdout=io.StringIO())

    assert not ApiToken.objects.exists()


def test_a_token_stops_working_when_its_owner_has_no_second_factor(alice):
    key = make_token(alice)
    Authenticator.objects.filter(user=alice).delete()  # e.g. an administrator reset a lost phone

    response = token_client(key).get(SEARCH)

    assert response.status_code == 401
    assert "second factor" in response.json()["detail"]


def test_the_api_refuses_a_token_for_a_user_without_a_second_factor(no_mfa_user):
    # Their session cannot reach the API at all (held at enrolment); nor can anything make them a token.
    assert api_as(no_mfa_user).post("/api/v1/tokens/", {"name": "x"}, format="json").status_code == 403


# --- stored hashed, printed once, expiring, last use recorded --------------------------------------


def test_drf_create_token_prints_a_key_that_is_stored_only_as_a_hash(alice):
    out = io.StringIO()
    call_command("drf_create_token", alice.email, stdout=out)
    key = created_key(out)

    token = ApiToken.objects.get(user=alice)
    assert token.digest == key_digest(key) and key not in {token.digest, token.prefix, token.name}
    assert token_client(key).get("/api/v1/me/").json()["email"] == alice.email
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_apitoken")
        assert key not in repr(cursor.fetchall())


def test_a_token_expires(alice):
    key = make_token(alice, expires_in_days=1)
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = token_client(key).get("/api/v1/me/")

    assert response.status_code == 401 and "expired" in response.json()["detail"]


def test_a_token_lasts_the_default_unless_told(alice, settings):
    make_token(alice)
    make_token(alice, expires_in_days=7)

    lifetimes = sorted(round((t.expires_at - t.created_at).total_seconds() / 86400) for t in ApiToken.objects.all())
    assert lifetimes == [7, settings.API_TOKEN_DEFAULT_DAYS]


def test_a_token_longer_than_the_maximum_is_refused(alice, settings):
    response = api_as(alice).post("/api/v1/tokens/", {"name": "x", "expires_in_days": 10_000}, format="json")

    assert response.status_code == 400 and "expires_in_days" in response.json()


def test_using_a_token_records_when_it_was_last_used(alice):
    key = make_token(alice)
    assert ApiToken.objects.get().last_used_at is None

    token_client(key).get("/api/v1/me/")

    assert ApiToken.objects.get().last_used_at is not None


# --- listed and revocable, in the API and the UI -----------------------------------------------------


def test_a_user_makes_lists_and_revokes_tokens_through_the_api(alice, bob):
    api = api_as(alice)
    created = api.post("/api/v1/tokens/", {"name": "ci runner", "expires_in_days": 30}, format="json")
    assert created.status_code == 201
    key, token_id = created.json()["key"], created.json()["id"]
    make_token(bob)

    listed = api.get("/api/v1/tokens/").json()["results"]
    assert [(t["name"], t["state"], t["user"]) for t in listed] == [("ci runner", "active", "alice@a.example")]
    assert "key" not in listed[0]  # shown once, at creation

    assert api.post(f"/api/v1/tokens/{token_id}/revoke/").json()["state"] == "revoked"
    response = token_client(key).get("/api/v1/me/")
    assert response.status_code == 401 and "revoked" in response.json()["detail"]
    changes = AuditEvent.objects.filter(event_type=EventType.USER_SECURITY_ATTRIBUTES_CHANGED)
    assert [e.detail["change"] for e in changes.order_by("pk")][-2:] == ["API token created", "API token revoked"]


def test_nobody_revokes_anothers_token_but_a_regional_administrator(alice, bob, rita):
    make_token(bob)
    bobs = ApiToken.objects.get(user=bob)

    assert api_as(alice).post(f"/api/v1/tokens/{bobs.pk}/revoke/").status_code == 404
    assert api_as(rita).post(f"/api/v1/tokens/{bobs.pk}/revoke/").status_code == 200
    assert ApiToken.objects.get(pk=bobs.pk).revoked_by == rita


def test_a_token_cannot_make_another_token(alice):
    response = api_as(alice, token=True).post("/api/v1/tokens/", {"name": "successor"}, format="json")

    assert response.status_code == 403 and ApiToken.objects.count() == 1


def test_the_tokens_page_shows_a_new_key_once_and_revokes(alice):
    client = signed_in(alice)

    page = client.post("/account/tokens/", {"name": "reporting script", "expires_in_days": 30})
    key = page.context["created"][1]
    assert key.encode() in page.content and token_client(key).get("/api/v1/me/").status_code == 200
    listing = client.get("/account/tokens/")
    assert b"reporting script" in listing.content and key.encode() not in listing.content

    token = ApiToken.objects.get()
    client.post(f"/account/tokens/{token.pk}/revoke/")
    assert token_client(key).get("/api/v1/me/").status_code == 401


# --- service accounts: a regional administrator's, for one trust -------------------------------------


def make_service_account(rita, role="imaging_manager", trust="RAA") -> dict:
    response = api_as(rita).post(
        "/api/v1/service-accounts/", {"name": "PACS router", "trust": trust, "role": role}, format="json"
    )
    assert response.status_code == 201, response.json()
    return response.json()


def test_a_regional_administrator_makes_a_service_account_and_its_token(rita, gateway_a):
    account = make_service_account(rita)
    created = api_as(rita).post("/api/v1/tokens/", {"name": "router", "user": account["email"]}, format="json")

    assert created.status_code == 201
    client = token_client(created.json()["key"])
    assert [g["name"] for g in client.get("/api/v1/gateways/").json()["results"]] == ["Main PACS"]
    assert User.objects.get(email=account["email"]).has_usable_password() is False


def test_a_service_account_stays_within_its_one_trust(rita, trust_b):
    account = make_service_account(rita)

    other = api_as(rita).post(
        "/api/v1/memberships/", {"user": account["email"], "trust": "RBB", "role": "clinician"}, format="json"
    )
    regional = api_as(rita).post(
        "/api/v1/service-accounts/", {"name": "x", "trust": "RAA", "role": "regional_admin"}, format="json"
    )

    assert other.status_code == 400 and "one trust" in str(other.json())
    assert regional.status_code == 400


def test_only_regional_administrators_make_service_accounts_or_tokens_for_others(rita, amir, bob):
    account = make_service_account(rita)

    assert (
        api_as(amir)
        .post("/api/v1/service-accounts/", {"name": "x", "trust": "RAA", "role": "clinician"}, format="json")
        .status_code
        == 403
    )
    assert (
        api_as(amir).post("/api/v1/tokens/", {"name": "x", "user": account["email"]}, format="json").status_code == 403
    )
    # Not even a regional administrator makes a token for another person: only for service accounts.
    assert api_as(rita).post("/api/v1/tokens/", {"name": "x", "user": bob.email}, format="json").status_code == 400


def test_the_service_accounts_page_makes_an_account_and_shows_its_key_once(rita, trust_a):
    client = signed_in(rita)

    client.post("/account/service-accounts/", {"name": "Night report feed", "trust": "RAA", "role": "clinician"})
    account = User.objects.get(is_service_account=True)
    page = client.post(f"/account/service-accounts/{account.pk}/tokens/", {"name": "feed", "expires_in_days": 30})

    key = page.context["created"][1]
    assert token_client(key).get("/api/v1/me/").json()["memberships"][0]["trust"] == "RAA"


# --- the plain tokens DRF stored before ---------------------------------------------------------------


def test_plain_drf_tokens_are_hashed_and_removed_by_the_data_migration(alice):
    from importlib import import_module

    from django.apps import apps

    migration = import_module("accounts.migrations.0003_hash_plain_drf_tokens")
    plain_key = "0123456789abcdef0123456789abcdef01234567"
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, user_id bigint, created timestamptz)"
        )
        cursor.execute(
            "INSERT INTO authtoken_token VALUES (%s, %s, %s)", [plain_key, alice.pk, "2026-01-02 03:04:05+00:00"]
        )

    migration.hash_plain_tokens(apps, SimpleNamespace(connection=connection))  # all it uses of a schema editor

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM authtoken_token")
        assert cursor.fetchone()[0] == 0
    token = ApiToken.objects.get()
    assert token.digest == key_digest(plain_key) and token.user == alice
    assert token.expires_at > timezone.now() + timedelta(days=29)
    assert token_client(plain_key).get("/api/v1/me/").status_code == 200  # the client keeps its key for now
