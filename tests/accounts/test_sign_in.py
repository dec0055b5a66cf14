"""Signing in: password then second factor, throttling, session hygiene, and the audit of each step."""

from __future__ import annotations

import io
import re
import time

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client

from accounts.middleware import SIGNED_IN_AT
from audit.models import AuditEvent
from tests.helpers import PASSWORD, api_as, signed_in, totp_code

pytestmark = pytest.mark.django_db


def sign_in(client: Client, email: str, password: str = PASSWORD, code: str | None = None):
    response = client.post("/accounts/login/", {"login": email, "password": password})
    if response.status_code == 302 and response["Location"].startswith("/accounts/2fa/authenticate"):
        response = client.post("/accounts/2fa/authenticate/", {"code": code or totp_code()})
    return response


def test_password_and_totp_sign_in_reaches_the_directory(alice, trust_a):
    client = Client()

    after_password = client.post("/accounts/login/", {"login": alice.email, "password": PASSWORD})
    half_signed_in = client.get("/")
    after_code = client.post("/accounts/2fa/authenticate/", {"code": totp_code()})

    assert after_password["Location"].startswith("/accounts/2fa/authenticate")
    assert half_signed_in.status_code == 302  # the password alone opens nothing
    assert after_code.status_code == 302
    page = client.get("/")
    assert page.status_code == 200
    assert trust_a.name in page.content.decode()


def test_a_wrong_second_factor_code_does_not_sign_in_and_is_audited(alice):
    client = Client()
    sign_in(client, alice.email, code="000000")

    assert client.get("/").status_code == 302
    failure = AuditEvent.objects.filter(event_id="110114", outcome=4, actor_user=alice).get()
    assert failure.detail["step"] == "second_factor"


def test_sign_in_sign_out_and_failure_are_on_the_audit_trail(alice):
    client = Client(HTTP_USER_AGENT="WardPC/1.0")
    sign_in(client, alice.email, password="wrong password")
    sign_in(client, alice.email)
    client.post("/accounts/logout/")

    events = list(AuditEvent.objects.order_by("seq").values_list("event_type", "outcome", "actor_label"))
    assert events == [("110122", 4, ""), ("110122", 0, alice.email), ("110123", 0, alice.email)]
    failed = AuditEvent.objects.order_by("seq").first()
    assert failed.detail["attempted_email"] == alice.email
    assert failed.user_agent == "WardPC/1.0"
    assert failed.client_ip == "127.0.0.1"


def test_the_session_id_changes_at_sign_in(alice):
    client = Client()
    client.get("/accounts/login/")
    client.session.save()
    before = client.session.session_key

    sign_in(client, alice.email)

    assert client.session.session_key != before


def test_repeated_failures_lock_the_account_out_even_with_the_right_password(alice):
    client = Client()
    for _ in range(5):
        sign_in(client, alice.email, password="not it")

    response = client.post("/accounts/login/", {"login": alice.email, "password": PASSWORD})

    assert response.status_code == 200
    assert "Too many failed login attempts" in response.content.decode()
    assert client.get("/").status_code == 302


def test_a_user_without_a_second_factor_is_held_at_enrolment(no_mfa_user):
    client = Client()
    sign_in(client, no_mfa_user.email)

    page = client.get("/")
    api = client.get("/api/v1/me/")
    client.post("/accounts/reauthenticate/", {"password": PASSWORD})  # allauth asks before adding a factor
    enrolment = client.get("/accounts/2fa/totp/activate/")

    assert page.status_code == 302
    assert page["Location"] == "/accounts/2fa/totp/activate/"
    assert api.status_code == 403
    assert "second factor" in api.json()["detail"]
    assert enrolment.status_code == 200
    assert "Authenticator" in enrolment.content.decode()


def test_the_last_second_factor_cannot_be_removed(alice):
    from allauth.mfa.models import Authenticator

    from accounts.adapters import MFAAdapter

    totp = Authenticator.objects.get(user=alice, type="totp")
    assert MFAAdapter().can_delete_authenticator(totp) is False


def test_the_last_security_key_cannot_be_removed_but_one_of_two_factors_can(alice, trust_a):
    from allauth.mfa.models import Authenticator

    from accounts.roles import Role
    from tests.helpers import grant, make_user

    kay = grant(make_user("kay@a.example", mfa=False), trust_a, Role.CLINICIAN)
    key = Authenticator.objects.create(user=kay, type="webauthn", data={"name": "YubiKey", "credential": {}})
    client = signed_in(kay)
    client.post("/accounts/reauthenticate/", {"password": PASSWORD})

    refused = client.post(f"/accounts/2fa/webauthn/keys/{key.pk}/remove/", follow=True)

    assert Authenticator.objects.filter(pk=key.pk).exists()
    assert "only second factor" in refused.content.decode()

    spare = Authenticator.objects.create(user=kay, type="webauthn", data={"name": "Spare", "credential": {}})
    client.post(f"/accounts/2fa/webauthn/keys/{spare.pk}/remove/")
    assert not Authenticator.objects.filter(pk=spare.pk).exists()


def test_a_session_ends_after_the_absolute_timeout_however_active(alice, settings):
    client = signed_in(alice)
    session = client.session
    session[SIGNED_IN_AT] = time.time() - settings.SESSION_ABSOLUTE_TIMEOUT - 1
    session.save()

    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert client.get("/").status_code == 302


def test_sessions_have_an_idle_timeout_renewed_by_activity(settings):
    assert settings.SESSION_SAVE_EVERY_REQUEST is True
    assert settings.SESSION_COOKIE_AGE == settings.SESSION_IDLE_TIMEOUT <= 60 * 60


def test_deactivating_a_user_ends_their_sessions(alice, rita):
    client = Client()
    sign_in(client, alice.email)
    assert client.get("/").status_code == 200

    response = api_as(rita).patch(f"/api/v1/users/{alice.pk}/", {"is_active": False}, format="json")

    assert response.status_code == 200
    assert client.get("/").status_code == 302
    assert not client.session.get("_auth_user_id")


def test_an_invited_user_sets_a_password_by_email_then_must_enrol(rita, trust_a, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_as(rita).post(
            "/api/v1/users/", {"email": "Newcomer@A.example", "full_name": "New Comer"}, format="json"
        )
    assert response.status_code == 201
    assert (
        api_as(rita)
        .post(
            "/api/v1/memberships/", {"user": "newcomer@a.example", "trust": "RAA", "role": "clinician"}, format="json"
        )
        .status_code
        == 201
    )

    assert len(mail.outbox) == 1
    link = re.search(r"http://\S+/accounts/password/reset/key/\S+", mail.outbox[0].body).group(0)
    client = Client()
    form_page = client.get(link.replace("http://127.0.0.1:8000", ""), follow=True)
    new_password = "a long new password 4 me"
    client.post(form_page.redirect_chain[-1][0], {"password1": new_password, "password2": new_password})

    landing = sign_in(client, "newcomer@a.example", password=new_password)
    assert landing.status_code == 302
    assert client.get("/")["Location"] == "/accounts/2fa/totp/activate/"


def test_drf_create_token_works_with_an_email(alice):
    out = io.StringIO()
    call_command("drf_create_token", alice.email, stdout=out)

    key = out.getvalue().split()[2]  # "Generated token <key> for user <email>", as DRF's own command prints
    client = Client(HTTP_AUTHORIZATION=f"Token {key}")
    me = client.get("/api/v1/me/").json()
    assert me["email"] == alice.email
    assert me["memberships"] == [{"trust": "RAA", "trust_name": "Alpha Hospitals", "role": "clinician"}]


def test_a_deactivated_user_token_is_refused(alice):
    client = api_as(alice, token=True)
    alice.is_active = False
    alice.save()

    assert client.get("/api/v1/me/").status_code == 401


def test_role_changes_made_in_the_admin_are_audited(rita, alice, trust_b):
    client = signed_in(rita)

    response = client.post(
        "/admin/accounts/membership/add/", {"user": alice.pk, "trust": trust_b.pk, "role": "clinician"}
    )

    assert response.status_code == 302
    event = AuditEvent.objects.filter(event_type="110136", detail__via="admin").get()
    assert event.trust == "RBB"
    assert event.actor_user == rita
