"""DICOMweb fixtures: the share-link fixtures (a link staged with a small CT, a consultant past the code)
and a bearer token minted through the link's own page, as a consultant would make one."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.browser.conftest import chromium  # noqa: F401 - the session's one browser
from tests.sharing.conftest import (  # noqa: F401 - fixtures shared with the share-link tests
    _no_celery,
    _spool,
    consultant,
    ct_files,
    post,
    ready_link,
    source_gateway,
)
from tests.sharing.test_staging_worker import pacs_study, share_worker, source_pacs  # noqa: F401 - real PACS, worker


def mint_token(browser: Client) -> str:
    """Press "Make a token" on the link's "Use your own viewer" page; the token is shown once."""
    response = post(browser, "/s/dicomweb/", {"mint": "1"})
    assert response.status_code == 200, response.content
    return re.search(rb'id="dicomweb-token">([A-Za-z0-9_-]+)<', response.content).group(1).decode()


@pytest.fixture
def bearer(consultant) -> str:  # noqa: F811 - the fixture imported above
    return mint_token(consultant)
