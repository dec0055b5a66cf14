"""Issue #6 acceptance in a real browser (Debian Chromium through Playwright), a real Celery worker and a
real Orthanc as the source PACS: a clinician creates a link; the consultant opens it in a fresh browser,
passes the emailed code, scrolls a CT series, changes the window and returns an opinion; the opinion
appears for the clinician and as a Basic Text SR in the source Orthanc."""

from __future__ import annotations

import io
import time

import pydicom
import pytest

from sharing.models import SecondOpinion, ShareLink
from sharing.sr import BASIC_TEXT_SR
from tests.browser.conftest import chromium  # noqa: F401 - the session's browser
from tests.browser.test_sign_in_browser import sign_in_with_password
from tests.helpers import totp_code
from tests.transfers.peers import orthanc_gateway

from .conftest import emailed_code
from .test_staging_worker import pacs_study, share_worker, source_pacs, wait_for  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.interop, pytest.mark.django_db(transaction=True)]


def shown(page) -> dict:
    image = page.locator("#viewer-image")
    return {name: image.get_attribute(f"data-{name}") for name in ("sop", "frame", "wc", "ww")} | {
        "src": image.get_attribute("src")
    }


def wait_until_shown_changes(page, before: dict, timeout: float = 10.0) -> dict:
    """The image shown once it differs from `before` and has stayed put for a moment (the viewer may show
    images on the way while it catches up with fast scrolling)."""
    deadline = time.monotonic() + timeout
    previous = None
    while time.monotonic() < deadline:
        now = shown(page)
        loaded = page.locator("#viewer-image").evaluate("img => img.complete && img.naturalWidth > 0")
        if now != before and loaded and now == previous:
            return now
        previous = now if loaded else None
        page.wait_for_timeout(300)
    raise AssertionError(f"the displayed image did not change from {before} (last {previous})")


def test_a_consultant_views_a_shared_ct_and_returns_an_opinion_filed_in_the_source_pacs(
    chromium,  # noqa: F811
    live_server,
    settings,
    share_worker,  # noqa: F811
    source_pacs,  # noqa: F811
    pacs_study,  # noqa: F811
    alice,
    trust_a,
):
    settings.SITE_URL = live_server.url
    orthanc_gateway(trust_a, source_pacs)

    # The clinician creates the link in the portal.
    staff = chromium.new_context(base_url=live_server.url)
    page = staff.new_page()
    page.set_default_timeout(20_000)
    sign_in_with_password(page, alice.email)
    page.wait_for_url("**/accounts/2fa/authenticate/")
    page.fill("input[name=code]", totp_code())
    page.click("form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"/trusts/RAA/share-links/new/?study={pacs_study.uid}")
    page.fill("input[name=recipient_name]", "Dr Chidi Okafor")
    page.fill("input[name=recipient_email]", "consultant@elsewhere.example")
    page.fill("textarea[name=purpose]", "Second opinion on a possible pulmonary embolism")
    page.click("#create-link")
    page.click("#confirm-share")  # the confirmation naming the patient and the consultant
    url = page.locator("#share-url").inner_text()
    assert url.startswith(f"{live_server.url}/s/")
    link = ShareLink.objects.get()
    wait_for(lambda: ShareLink.objects.filter(pk=link.pk, staging_status="ready").exists(), share_worker, "staging")
    page.click("#link-page")
    assert page.locator("#link-state").inner_text() == "active"

    # The consultant, in a fresh browser context: link, then the code emailed separately.
    outside = chromium.new_context(base_url=live_server.url)
    viewer = outside.new_page()
    viewer.set_default_timeout(20_000)
    errors: list[str] = []
    viewer.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    viewer.goto(url)
    viewer.click("#open-link button")  # the page of the link changes nothing until the consultant acts
    viewer.wait_for_url("**/s/code/")
    assert "/s/" + url.rsplit("/s/", 1)[1] not in viewer.url  # the token has left the address bar
    viewer.fill("input[name=code]", emailed_code())
    viewer.click("button[name=verify]")
    viewer.wait_for_load_state()
    assert viewer.url == f"{live_server.url}/s/", viewer.content()[:3000]
    viewer.wait_for_selector("#viewer[data-ready=true]")

    # Scroll the CT series with the keyboard and the wheel.
    first = shown(viewer)
    viewer.locator("#viewport").focus()
    viewer.keyboard.press("ArrowDown")
    second = wait_until_shown_changes(viewer, first)
    assert second["sop"] != first["sop"] and second["src"] != first["src"]
    viewer.locator("#viewport").hover()
    viewer.mouse.wheel(0, 120)
    third = wait_until_shown_changes(viewer, second)
    assert third["sop"] not in (first["sop"], second["sop"])
    pixels_before = viewer.locator("#viewer-image").screenshot()

    # Change the window with a preset: the image URL names the new window and the pixels change.
    viewer.click("[data-preset=lung]")
    windowed = wait_until_shown_changes(viewer, third)
    assert windowed["sop"] == third["sop"] and (windowed["wc"], windowed["ww"]) != (third["wc"], third["ww"])
    assert "wc=" in windowed["src"] and "ww=" in windowed["src"]
    viewer.wait_for_timeout(200)
    assert viewer.locator("#viewer-image").screenshot() != pixels_before
    assert not [e for e in errors if "Content Security Policy" in e]

    # The opinion.
    viewer.click("text=Write your second opinion")
    viewer.wait_for_url("**/s/opinion/")
    viewer.fill("textarea[name=text]", "Filling defect in a right lower lobe segmental artery.")
    viewer.fill("textarea[name=conclusion]", "Segmental pulmonary embolism.")
    viewer.check("input[name=urgent]")
    viewer.fill("input[name=consultant_name]", "Dr Chidi Okafor")
    viewer.fill("input[name=registration_number]", "GMC 7654321")
    viewer.click("#opinion-form button[type=submit]")
    viewer.wait_for_selector("#opinion-sent")

    # The clinician sees it on the link's page...
    page.reload()
    assert "Segmental pulmonary embolism." in page.locator(".opinion").inner_text()
    # ...and the trust's radiologists see it in their PACS, in the same study.
    opinion = wait_for(
        lambda: SecondOpinion.objects.filter(filing_status__in=("filed", "failed")).first(), share_worker, "filing"
    )
    assert opinion.filing_status == "filed", opinion.filing_error
    found = source_pacs.find("Instance", {"SOPInstanceUID": opinion.sr_uids[pacs_study.uid]["sop"]})
    assert len(found) == 1
    stored = pydicom.dcmread(io.BytesIO(source_pacs.instance_file(found[0])))
    assert stored.SOPClassUID == BASIC_TEXT_SR and stored.StudyInstanceUID == pacs_study.uid
    source_pacs.session().delete(f"{source_pacs.url}/instances/{found[0]}", timeout=30)
    staff.close()
    outside.close()
