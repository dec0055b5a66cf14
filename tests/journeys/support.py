"""What the journey and accessibility tests share: axe-core on every page, screenshots as CI artefacts,
signing staff in, and driving a page by mouse or by keyboard alone.

Screenshots go to $JOURNEY_SCREENSHOTS_DIR, else var/journeys/ (one folder per test, one PNG per step),
kept after the run for CI to collect.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from axe_playwright_python.sync_playwright import Axe
from django.conf import settings
from django.test import Client

from tests.helpers import PASSWORD, totp_code

WCAG_22_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
BLOCKING = ("serious", "critical")
_AXE = Axe()


def artefacts_dir(test_name: str) -> Path:
    root = Path(os.environ.get("JOURNEY_SCREENSHOTS_DIR") or Path(settings.BASE_DIR) / "var" / "journeys")
    folder = root / re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)[:120]
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Journey:
    """One test's pages: each step is screenshotted and checked with axe-core (WCAG 2.2 AA)."""

    def __init__(self, test_name: str) -> None:
        self.folder = artefacts_dir(test_name)
        for old in self.folder.glob("*.png"):
            old.unlink()
        self.step = 0
        self.checked: list[str] = []

    def check(self, page, name: str) -> None:
        """Screenshot the page, then fail on any serious or critical axe violation."""
        page.wait_for_load_state("load")
        self.step += 1
        page.screenshot(path=str(self.folder / f"{self.step:02d}-{name}.png"), full_page=True)
        results = _AXE.run(page, options={"runOnly": {"type": "tag", "values": WCAG_22_AA}})
        bad = [v for v in results.response["violations"] if v.get("impact") in BLOCKING]
        self.checked.append(page.url)
        assert not bad, f"{name} ({page.url}): " + "; ".join(
            f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}" for v in bad
        )


def session_for(context, live_server, user) -> None:
    """Put a signed-in session (password and second factor passed) into a browser context."""
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    host = live_server.url.split("://", 1)[1].split(":")[0]
    context.add_cookies([{"name": cookie.key, "value": cookie.value, "domain": host, "path": "/"}])


class Driver:
    """Acts on a page with the mouse, or with the keyboard alone (Tab to the control, then type, Space or
    Enter): the same journey runs both ways."""

    MAX_TABS = 250

    def __init__(self, page, keyboard: bool) -> None:
        self.page = page
        self.keyboard = keyboard

    def focus(self, locator) -> None:
        """Tab until the control has the focus (from the top of the page), as a keyboard user would."""
        target = locator.element_handle()
        assert target is not None, f"no such control: {locator}"
        self.page.evaluate("() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); }")
        for _ in range(self.MAX_TABS):
            self.page.keyboard.press("Tab")
            if self.page.evaluate("el => el === document.activeElement", target):
                return
        raise AssertionError(f"{locator} could not be reached with the Tab key")

    def click(self, locator) -> None:
        if self.keyboard:
            self.focus(locator)
            tag = locator.evaluate("el => el.tagName + ':' + (el.type || '')").lower()
            self.page.keyboard.press("Space" if tag in ("input:checkbox", "input:radio") else "Enter")
        else:
            locator.click()

    def fill(self, locator, text: str) -> None:
        if self.keyboard:
            self.focus(locator)
            self.page.keyboard.press("Control+A")
            self.page.keyboard.type(text)
        else:
            locator.fill(text)

    def check(self, locator) -> None:
        if locator.is_checked():
            return
        if self.keyboard:
            self.focus(locator)
            self.page.keyboard.press("Space")
        else:
            locator.check()
        assert locator.is_checked()

    def choose(self, select, label: str) -> None:
        """A <select>: by keyboard, focus it and type the option's text (what Chromium's select does)."""
        if self.keyboard:
            self.focus(select)
            self.page.keyboard.type(label)
            assert label in select.evaluate("el => el.options[el.selectedIndex].text"), label
        else:
            select.select_option(label=select.locator("option", has_text=label).first.inner_text())

    def radio(self, locator) -> None:
        """A radio of a group: Tab reaches the group, arrows move the choice."""
        if not self.keyboard:
            locator.check()
            return
        name = locator.get_attribute("name")
        group = self.page.locator(f"input[type=radio][name='{name}']")
        checked = self.page.locator(f"input[type=radio][name='{name}']:checked")
        self.focus(checked if checked.count() else group.first)
        for _ in range(group.count()):
            if locator.is_checked():
                return
            self.page.keyboard.press("ArrowDown")
        assert locator.is_checked(), f"{locator} could not be chosen with the arrow keys"


def sign_in(page, email: str, drive: Driver) -> None:
    """The real sign-in: password, then the authenticator's code."""
    page.goto("/accounts/login/")
    drive.fill(page.locator("input[name=login]"), email)
    drive.fill(page.locator("input[name=password]"), PASSWORD)
    drive.click(page.locator("form button[type=submit]").first)
    page.wait_for_url("**/accounts/2fa/authenticate/")
    drive.fill(page.locator("input[name=code]"), totp_code())
    drive.click(page.locator("form button[type=submit]").first)
    page.wait_for_url(re.compile(r"^https?://[^/]+/$"))
