"""AUDIT_* settings: nonsense fails at start-up, retention cannot go below eight years, the jobs are scheduled."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from audit import conf

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("AUDIT_RETENTION_YEARS", "3", "AUDIT_RETENTION_YEARS must be at least 8"),
        ("AUDIT_WORKING_HOURS", "9-5", "AUDIT_WORKING_HOURS must look like 08:00-18:00"),
        ("AUDIT_WORKING_DAYS", "mon,funday", "AUDIT_WORKING_DAYS names days"),
        ("AUDIT_ALERT_SEARCHES_PER_HOUR", "0", "AUDIT_ALERT_SEARCHES_PER_HOUR must be at least 1"),
    ],
)
def test_a_nonsense_audit_setting_fails_loudly(name, value, message):
    env = {"PATH": os.environ["PATH"], "DEBUG": "1", name: value}

    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True)

    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize(
    ("database_url", "migration_url", "message"),
    [
        ("postgres://app@db/portal", "postgres://owner@db/other", "must name DATABASE_URL's database"),
        ("postgres://app@db/portal", "postgres://owner@elsewhere/portal", "must name DATABASE_URL's database"),
        ("sqlite:////tmp/portal.sqlite3", "sqlite:////tmp/portal.sqlite3", "is for PostgreSQL"),
    ],
)
def test_a_migration_database_that_is_not_the_portals_fails_loudly(database_url, migration_url, message):
    env = {"PATH": os.environ["PATH"], "DEBUG": "1", "DATABASE_URL": database_url}

    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**env, "MIGRATION_DATABASE_URL": migration_url},
        capture_output=True,
        text=True,
    )

    assert result.returncode != 0
    assert message in result.stderr


def test_working_hours_and_days_parse():
    start, end = conf.working_hours("07:30-19:00")
    assert (start.hour, start.minute, end.hour) == (7, 30, 19)
    assert conf.working_days(["Mon", "tuesday", "sun"]) == {0, 1, 6}


def test_the_audit_jobs_are_on_the_beat_schedule(settings):
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}

    assert {
        "audit.scan_alerts",
        "audit.export_chain_digest",
        "audit.verify_chain_fully",
        "audit.verify_chain_anchored",
    } <= tasks
    assert settings.AUDIT_RETENTION_YEARS >= 8


def test_the_scheduled_jobs_are_registered_with_celery():
    import audit.tasks  # noqa: F401  (what the worker's autodiscovery imports)
    from portal.celery import app

    assert {
        "audit.scan_alerts",
        "audit.export_chain_digest",
        "audit.verify_chain_fully",
        "audit.verify_chain_anchored",
    } <= set(app.tasks)
