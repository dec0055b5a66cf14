"""Twenty writers at once, as threads and as processes, leave one unbroken chain: no fork, no gap."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connection, connections

from audit.codes import Action, EventID
from audit.context import system_actor
from audit.models import AuditEvent
from audit.services import record_event, verify_chain
from tests.audit.conftest import require_postgres

ROOT = Path(__file__).resolve().parents[2]
WRITERS = 20
EACH = 10


def _env(database_url: str) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "DEBUG": "1", "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}


def _run_writers(database_url: str) -> None:
    start_at = time.time() + 4  # after every interpreter has loaded Django
    writers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.audit.chain_writer", str(EACH), str(start_at)],
            cwd=ROOT,
            env=_env(database_url),
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(WRITERS)
    ]
    for writer in writers:
        _, errors = writer.communicate(timeout=180)
        assert writer.returncode == 0, errors


def _postgres_url() -> str:
    settings = connection.settings_dict
    host, port, user = settings["HOST"] or "127.0.0.1", settings["PORT"] or 5432, settings["USER"]
    password = f":{settings['PASSWORD']}" if settings["PASSWORD"] else ""
    return f"postgres://{user}{password}@{host}:{port}/{settings['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_twenty_threads_writing_at_once_leave_an_intact_chain():
    require_postgres()  # SQLite's in-memory test database serialises threads by refusing them
    barrier = threading.Barrier(WRITERS)
    failures: list[BaseException] = []

    def write() -> None:
        try:
            barrier.wait()
            actor = system_actor(threading.current_thread().name)
            for i in range(EACH):
                record_event(event_id=EventID.QUERY, action=Action.EXECUTE, actor=actor, detail={"i": i})
        except BaseException as exc:  # noqa: BLE001  (reported below)
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, name=f"writer-{n}") for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not failures
    seqs = list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, WRITERS * EACH + 1))
    report = verify_chain()
    assert report.ok, report.problem
    assert report.events_checked == WRITERS * EACH


@pytest.mark.django_db(transaction=True)
def test_twenty_processes_writing_at_once_leave_an_intact_chain(tmp_path):
    if connection.vendor == "postgresql":
        _run_writers(_postgres_url())
        report = verify_chain()
        assert report.ok, report.problem
        assert report.events_checked == WRITERS * EACH
        return
    # SQLite: the writers share a real database file, as the demo's web and worker processes do.
    url = f"sqlite:///{tmp_path / 'chain.sqlite3'}"
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "--skip-checks"],
        cwd=ROOT,
        env=_env(url),
        capture_output=True,
        text=True,
    )
    assert migrate.returncode == 0, migrate.stderr
    _run_writers(url)
    verified = subprocess.run(
        [sys.executable, "manage.py", "verify_audit_chain", "--skip-checks"],
        cwd=ROOT,
        env=_env(url),
        capture_output=True,
        text=True,
    )
    assert verified.returncode == 0, verified.stderr
    assert f"intact: {WRITERS * EACH} events" in verified.stdout


@pytest.mark.django_db(transaction=True)
def test_twenty_parallel_api_requests_leave_an_intact_chain(live_server, settings, alice, bob, ada, rita):
    """Real requests through the live server, each recording its token's use and the user's own work."""
    require_postgres()  # the live server shares one connection per thread only with PostgreSQL
    import requests

    from tests.helpers import make_token

    settings.AUDIT_TOKEN_USE_INTERVAL = 0
    keys = [make_token(user) for user in (alice, bob, ada, rita)]
    before = AuditEvent.objects.count()
    barrier = threading.Barrier(WRITERS)
    statuses: list[int] = []

    def call(n: int) -> None:
        barrier.wait()
        response = requests.get(
            f"{live_server.url}/api/v1/me/", headers={"Authorization": f"Token {keys[n % 4]}"}, timeout=60
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert statuses == [200] * WRITERS
    assert AuditEvent.objects.count() - before == WRITERS
    assert verify_chain().ok
