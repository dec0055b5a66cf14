"""In a real browser: staff sign in with password and TOTP; without a second factor they are held."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.helpers import PASSWORD, totp_code

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in_with_password(page, email: str) -> None:
    page.goto("/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")


def test_a_clinician_signs_in_with_totp_and_sees_their_home(page, live_server, alice, trust_a, trust_b, gateway_b):
    sign_in_with_password(page, alice.email)
    page.wait_for_url("**/accounts/2fa/authenticate/")
    page.fill("input[name=code]", totp_code())
    page.click("form button[type=submit]")

    page.wait_for_url(f"{live_server.url}/")
    assert page.locator("h1").inner_text().startswith("Your work")
    expect(page.get_by_text("RAA · Clinician")).to_be_visible()
    page.get_by_role("link", name="Directory").click()
    # The URL changes when the navigation commits, before the page is parsed: wait for the link itself.
    expect(page.get_by_role("link", name=trust_b.name)).to_be_visible()


def test_a_user_without_a_second_factor_is_held_at_enrolment(page, no_mfa_user, trust_a):
    sign_in_with_password(page, no_mfa_user.email)
    page.wait_for_load_state()

    for path in ("/", f"/trusts/{trust_a.ods_code}/", "/admin/"):
        page.goto(path)
        assert "/accounts/2fa/" in page.url or "/accounts/reauthenticate/" in page.url, path
        assert trust_a.name not in page.content()

    api = page.request.get("/api/v1/trusts/")
    assert api.status == 403


def test_the_api_docs_render_in_the_browser_under_the_content_security_policy(page, live_server, alice):
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto("/api/docs/")  # for signed-in staff only: the browser is sent to sign in first
    page.wait_for_url("**/accounts/login/**")
    sign_in_with_password(page, alice.email)
    page.wait_for_url("**/accounts/2fa/authenticate/")
    page.fill("input[name=code]", totp_code())
    page.click("form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")

    page.goto("/api/docs/")
    page.wait_for_selector("text=/api/v1/trusts/")

    assert not [e for e in errors if "Content Security Policy" in e]
