"""Real Orthanc servers as trust A's and trust B's PACS and a real Celery worker, from tests/transfers."""

from __future__ import annotations

from tests.transfers.conftest import (  # noqa: F401 - fixtures and the SQLite hook, shared on purpose
    pacs_pair,
    pytest_collection_modifyitems,
    transfer_worker,
)
