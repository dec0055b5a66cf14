"""A worker process opens the test database too: the SQLite hook of the transfer tests applies here."""

from __future__ import annotations

from tests.transfers.conftest import pytest_collection_modifyitems  # noqa: F401 - shared on purpose
