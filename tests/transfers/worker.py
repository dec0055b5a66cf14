"""A real Celery worker process sharing the test database and a broker with the test process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection
from kombu import pools as kombu_pools

from portal.celery import app

BASE_DIR = Path(settings.BASE_DIR)
LEASE_SECONDS = 6


def database_url() -> str:
    """The test database pytest-django created, as a URL the worker's settings read."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        name = str(db["NAME"])
        assert name and "memory" not in name, "a worker process needs a file-based SQLite test database"
        return f"sqlite:///{name}"
    auth = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def filesystem_broker_options(folder: Path) -> dict:
    (folder / "queue").mkdir(parents=True, exist_ok=True)
    (folder / "processed").mkdir(parents=True, exist_ok=True)
    (folder / "control").mkdir(parents=True, exist_ok=True)
    return {
        "control_folder": str(folder / "control"),
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        "store_processed": False,
        "polling_interval": 0.1,  # as portal.settings: kombu's default second would slow every test
    }


def _reset_producers() -> None:
    """Publish with the broker options now in force. kombu keeps its pools in global registries keyed
    by connection: closing ours without clearing them would hand a later publisher (a test after the
    worker's) the closed pool, so reset() closes and forgets them all."""
    kombu_pools.reset()
    app._pool = None
    if "amqp" in app.__dict__:
        app.__dict__["amqp"]._producer_pool = None


@contextmanager
def isolated_broker(folder: Path) -> Iterator[dict]:
    """A broker this test shares with its worker and nobody else: Redis (as configured) with keys under a
    prefix of its own, so the demo, another test run or another xdist worker never takes its tasks; or,
    without REDIS_URL, a filesystem broker under `folder` rather than var/."""
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        options = filesystem_broker_options(folder)
    else:
        # A killed worker's unacknowledged task goes to another worker after visibility_timeout seconds.
        options = {
            "visibility_timeout": 30,
            "global_keyprefix": f"test-{uuid.uuid4().hex}:",
            "queue_order_strategy": settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("queue_order_strategy", "priority"),
        }
    previous = app.conf.broker_transport_options
    app.conf.broker_transport_options = options
    _reset_producers()
    try:
        yield options
    finally:
        app.conf.broker_transport_options = previous
        _reset_producers()


@dataclass
class Worker:
    """`celery -A portal worker -Q urgent,routine -c N --pool prefork` in its own process group."""

    workdir: Path
    broker_options: dict
    env_extra: dict[str, str] = field(default_factory=dict)
    concurrency: int = 2
    queues: str = "urgent,routine"
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "DATABASE_URL": database_url(),
            "DEBUG": "1",
            "SECRET_KEY": "transfer-worker-test-key",
            "SPOOL_DIR": str(self.workdir / "spool"),
            "TRANSFER_LEASE_SECONDS": str(LEASE_SECONDS),
            "TRANSFER_RETRY_BASE_DELAY": "1",
            "LOG_LEVEL": "INFO",
            **self.env_extra,
        }
        if self.broker_options:
            env["TEST_BROKER_TRANSPORT_OPTIONS"] = json.dumps(self.broker_options)
        return env

    def start(self, timeout: float = 60.0) -> Worker:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"worker-{uuid.uuid4().hex[:8]}.log"
        command = [
            sys.executable,
            "-m",
            "tests.transfers.celery_worker",
            "-Q",
            self.queues,
            "-c",
            str(self.concurrency),
            "--pool",
            "prefork",
            "-n",
            f"transfers-test-{uuid.uuid4().hex[:8]}@%h",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "INFO",
        ]
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            command, cwd=BASE_DIR, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the Celery worker exited at start:\n{self.log()}")
            if " ready." in self.log():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the Celery worker did not start within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def kill(self) -> None:
        """kill -9 the worker and its pool children (its own process group), as a crash would."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None
