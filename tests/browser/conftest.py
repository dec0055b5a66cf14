"""A real browser: Debian's Chromium driven by Playwright, headless, talking to the live server only."""

from __future__ import annotations

import os

import pytest

from tests.browser.chromium import CHROMIUM, CHROMIUM_FLAGS
from tests.helpers import require_tool

_SHARED: dict = {}


def shared_chromium(executable: str):
    """One Playwright and one Chromium per test process. Playwright's sync API refuses to start while
    another instance runs in the same thread, so every test module that needs a browser (import the
    `chromium` fixture from here) shares this one instead of starting its own."""
    if "browser" not in _SHARED:
        from playwright.sync_api import sync_playwright

        # Playwright's sync API runs an event loop in this thread; the ORM calls tests make between page
        # actions are ordinary synchronous calls, so Django's async-safety guard does not apply to them.
        os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        playwright = sync_playwright().start()
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        _SHARED.update(playwright=playwright, browser=browser)
    return _SHARED["browser"]


def stop_shared_chromium() -> None:
    if "browser" in _SHARED:
        _SHARED.pop("browser").close()
        _SHARED.pop("playwright").stop()


@pytest.fixture(scope="session")
def chromium():
    executable = require_tool(CHROMIUM, "Debian's Chromium")
    yield shared_chromium(executable)
    stop_shared_chromium()  # the first of the session's fixtures to finish closes it; later ones find it gone


@pytest.fixture
def page(chromium, live_server):
    context = chromium.new_context(base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()
