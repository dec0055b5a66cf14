"""An IG officer signs in through the real forms and finds every access to a patient's images (Chromium)."""

from __future__ import annotations

import pytest

from audit import catalogue
from audit.context import SYSTEM, Actor
from audit.models import AuditEvent
from tests.audit.conftest import PATIENT, STUDY
from tests.browser.conftest import chromium  # noqa: F401 - the session's browser (one Playwright per process)
from tests.helpers import PASSWORD, totp_code

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_ig_officer_finds_every_access_to_a_patients_images(
    chromium,  # noqa: F811
    live_server,
    ada,
    alice,
    bob,
    trust_b,
):
    from playwright.sync_api import expect

    alice_actor = Actor(type="user", user_id=alice.pk, label=alice.email, client_ip="10.20.30.40")
    catalogue.STUDY_VIEWED.record(
        actor=alice_actor, trust="RAA", nhs_number=PATIENT, study_uids=[STUDY], reason="reviewing CT after fall"
    )
    catalogue.EMERGENCY_AUTO_APPROVAL.record(
        actor=SYSTEM, trust="RAA", peer_trust="RBB", nhs_number=PATIENT, reason="trauma call: head injury"
    )
    bob_actor = Actor(type="user", user_id=bob.pk, label=bob.email)
    catalogue.STUDY_VIEWED.record(actor=bob_actor, trust="RBB", nhs_number="9990000026", study_uids=["1.2.3.4"])

    context = chromium.new_context()  # the process's one Chromium: Playwright's sync API allows no second
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("input[name=login]", ada.email)
        page.fill("input[name=password]", PASSWORD)
        page.locator("form button[type=submit]").first.click()
        page.wait_for_url("**/accounts/2fa/authenticate/**")
        page.fill("input[name=code]", totp_code())
        page.locator("form button[type=submit]").first.click()
        page.wait_for_url(f"{live_server.url}/")

        page.get_by_role("navigation", name="Menu").get_by_role("link", name="Audit").click()
        page.get_by_role("link", name="Patient access report").click()
        page.fill("input[name=nhs_number]", "999 000 0018")
        page.get_by_role("button", name="Show accesses").click()

        expect(page.get_by_role("heading", name="Patient 999 000 0018")).to_be_visible()
        report = page.locator("main")
        expect(report).to_contain_text(alice.email)
        expect(report).to_contain_text("reviewing CT after fall")
        expect(report).to_contain_text("trauma call: head injury")
        expect(report).to_contain_text("1 emergency access")
        expect(report).to_contain_text("10.20.30.40")
        expect(report).not_to_contain_text(bob.email)
        expect(page.get_by_role("link", name="FHIR R4 (JSON)")).to_be_visible()
    finally:
        context.close()

    looked = AuditEvent.objects.filter(event_id="110101", actor_user=ada, nhs_number=PATIENT)
    assert looked.filter(detail__report="patient access").exists()
