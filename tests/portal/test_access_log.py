"""gunicorn, started with the Procfile's own `web` command line, logs no patient identifier.

Searches carry NHS numbers, names, birth dates and local patient IDs in their query strings; a share
link carries its token in the path. The access log keeps the paths and harmless parameters only.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.db import connection

from audit.models import AuditEvent
from tests.dicom.orthanc import free_port
from tests.portal.test_deployment import PRODUCTION_ENV

ROOT = Path(__file__).resolve().parents[2]
IDENTIFIERS = ("9434765919", "SMITH", "1970-01-31", "MRN-7788", "1.2.826.0.1.3680043.99")


def procfile_web_command(port: int) -> list[str]:
    """The Procfile's `web` line, bound to a loopback port this test picked instead of 0.0.0.0:8000."""
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    argv = shlex.split(line.removeprefix("web:"))
    argv[argv.index("--bind") + 1] = f"127.0.0.1:{port}"
    argv[0] = str(Path(sys.executable).parent / argv[0])  # the virtualenv's gunicorn
    return argv


@pytest.fixture
def gunicorn(db, tmp_path):
    port = free_port()
    db_settings = connection.settings_dict
    database_url = (
        f"postgres://{db_settings['USER']}@{db_settings['HOST']}:{db_settings['PORT']}/{db_settings['NAME']}"
        if connection.vendor == "postgresql"
        else f"sqlite:///{tmp_path / 'db.sqlite3'}"
    )
    env = {
        **PRODUCTION_ENV,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "DATABASE_URL": database_url,
        "SPOOL_DIR": str(tmp_path / "spool"),
    }
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = os.environ["REDIS_URL"]
    log = (tmp_path / "gunicorn.log").open("w+")
    process = subprocess.Popen(procfile_web_command(port), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(f"{base}/healthz", timeout=20)
            break
        except (requests.ConnectionError, requests.Timeout):
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
            time.sleep(0.2)
    yield base, lambda: (tmp_path / "gunicorn.log").read_text()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    log.close()


def test_the_access_log_carries_no_patient_identifier(gunicorn):
    """Anonymous requests only: gunicorn's process commits to the test database, outside the test's
    transaction, so this test must write nothing there (share-link tokens: tests/sharing/test_production.py)."""
    base, read_log = gunicorn
    search = "nhs_number=9434765919&patient_name=SMITH&birth_date=1970-01-31&patient_id=MRN-7788&page=2"
    referer = f"{base}/audit/patients/?nhs_number=9434765919"
    for path in (
        f"/api/v1/trusts/RAA/studies/?{search}",
        f"/trusts/RAA/studies/?{search}",
        "/audit/patients/?nhs_number=9434765919",
        "/api/v1/audit-events/?nhs_number=9434765919&study_instance_uid=1.2.826.0.1.3680043.99&format=csv",
    ):
        requests.get(base + path, headers={"Referer": referer}, allow_redirects=False, timeout=30)
    time.sleep(0.5)  # the last access-log line is written after the answer is sent

    log = read_log()
    lines = [line for line in log.splitlines() if "GET /" in line]
    assert len(lines) >= 5, log  # /healthz and the four requests: the log is there at all
    for identifier in IDENTIFIERS:
        assert identifier not in log, identifier
    assert "/api/v1/trusts/RAA/studies/?nhs_number=[redacted]" in log and "page=2" in log and "format=csv" in log
    assert not AuditEvent.objects.exists()  # see the docstring


def test_the_portals_own_log_lines_redact_query_strings_too():
    from portal.logs import redact_query_strings

    line = redact_query_strings(None, "", {"event": "Bad Request: /trusts/RAA/studies/?nhs_number=9434765919&page=3"})

    assert line == {"event": "Bad Request: /trusts/RAA/studies/?nhs_number=[redacted]&page=3"}
