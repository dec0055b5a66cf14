"""Issue #21 acceptance in Chromium: OHIF, served by the portal, opens the shared CT from the link's page
and draws it; a member of staff opens their own trust's study (copied from a real Orthanc by a real
worker) the same way. Both under the advanced viewer's CSP, with no violation reported."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.browser.test_sign_in_browser import sign_in_with_password
from tests.helpers import totp_code
from tests.sharing.conftest import emailed_code
from tests.transfers.peers import orthanc_gateway

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WATCH_CSP = """document.addEventListener('securitypolicyviolation', e => {
  (window.__csp = window.__csp || []).push(e.violatedDirective + ' ' + e.blockedURI);
});"""


def new_page(chromium, live_server):
    context = chromium.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.add_init_script(WATCH_CSP)
    page = context.new_page()
    page.set_default_timeout(60_000)
    return context, page


def drawn_pixels(page) -> int:
    """Pixels of OHIF's viewport that are neither black nor its background: an image was drawn."""
    page.wait_for_selector(".cornerstone-canvas", state="visible")
    viewport = page.locator(".cornerstone-canvas").first
    for _ in range(60):
        shot = Image.open(io.BytesIO(viewport.screenshot())).convert("L")
        bright = int((np.asarray(shot) > 40).sum())
        if bright > 2000:
            return bright
        page.wait_for_timeout(1000)
    return bright


def assert_no_csp_violation(page) -> None:
    assert page.evaluate("() => window.__csp || []") == []


def test_ohif_opens_the_shared_ct_from_the_link_page(chromium, live_server, ready_link, settings):
    settings.SITE_URL = live_server.url
    context, page = new_page(chromium, live_server)
    page.goto(ready_link.path)
    page.click("#open-link button")
    page.wait_for_url("**/s/code/")
    page.fill("input[name=code]", emailed_code())
    page.click("button[name=verify]")
    page.wait_for_selector("#viewer[data-ready=true]")

    page.click("#advanced-viewer")
    page.wait_for_url("**/ohif/s/viewer?StudyInstanceUIDs=*")
    assert drawn_pixels(page) > 2000
    assert ready_link.token not in page.url
    assert_no_csp_violation(page)
    context.close()


def test_ohif_opens_a_staff_members_own_trust_study(
    chromium,
    live_server,
    share_worker,
    source_pacs,
    pacs_study,
    alice,
    trust_a,
):
    orthanc_gateway(trust_a, source_pacs)
    context, page = new_page(chromium, live_server)
    sign_in_with_password(page, alice.email)
    page.wait_for_url("**/accounts/2fa/authenticate/")
    page.fill("input[name=code]", totp_code())
    page.click("form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"/trusts/RAA/studies/{pacs_study.uid}/")
    page.click("#open-advanced-viewer")  # copies the study for viewing, then opens OHIF when it is ready
    page.wait_for_url("**/ohif/trusts/RAA/viewer?StudyInstanceUIDs=*", timeout=120_000)
    assert drawn_pixels(page) > 2000
    assert_no_csp_violation(page)
    context.close()
