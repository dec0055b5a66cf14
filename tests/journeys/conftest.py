"""Journeys through the portal in Debian's Chromium: fixtures borrowed from the areas they cross."""

from tests.sharing.conftest import ct_files  # noqa: F401 - a small synthetic CT, staged by hand
