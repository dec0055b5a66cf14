"""Journeys through the portal in Debian's Chromium: fixtures borrowed from the areas they cross."""

from tests.browser.conftest import chromium  # noqa: F401 - the session's one browser
from tests.sharing.conftest import ct_files  # noqa: F401 - a small synthetic CT, staged by hand
from tests.transfers.conftest import pacs_pair  # noqa: F401 - two real Orthanc servers
