"""The portal runs as a PostgreSQL role that may read and append to the audit trail, never rewrite it.

In-process tests take the portal's role with SET ROLE inside the test's transaction; the last test
builds the two roles as docker-compose does (docker/postgres/portal-roles.sh), migrates as the owner
through MIGRATION_DATABASE_URL, and runs the portal's commands as the app role in their own processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.core import checks
from django.db import connection, transaction
from django.db.utils import DatabaseError

from audit import alerts, catalogue
from audit.codes import Action, EventID
from audit.context import SYSTEM
from audit.dbroles import quote
from audit.models import AuditEvent, ChainDigest, ChainHead
from audit.services import record_event, verify_chain
from tests.audit.conftest import acting_as, require_postgres

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


def refused_as(role: str, sql: str) -> str:
    """One statement as `role`, in a savepoint (whose rollback also ends the SET LOCAL ROLE)."""
    with pytest.raises(DatabaseError) as caught, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL ROLE {quote(role)}")
        cursor.execute(sql)
    return str(caught.value)


def write(n: int) -> None:
    for i in range(n):
        record_event(event_id=EventID.QUERY, action=Action.EXECUTE, actor=SYSTEM, trust="RAA", detail={"i": i})


def test_the_portals_role_records_exports_and_raises_alerts(app_role, settings, tmp_path, trust_a):
    settings.AUDIT_DIGEST_DIR = tmp_path
    from audit.digest import export_digest

    with acting_as(app_role):
        write(3)
        catalogue.EMERGENCY_AUTO_APPROVAL.record(actor=SYSTEM, trust="RAA", peer_trust="RBB", reason="trauma call")
        digest = export_digest()
        raised = alerts.scan(notify_officers=False)
        report = verify_chain()

    assert digest.chain_ok and Path(digest.path).exists()
    assert {(alert.kind, alert.trust) for alert in raised.created} == {
        ("emergency_override", "RAA"),
        ("emergency_override", "RBB"),
    }
    assert report.ok and report.head_seq == 5
    assert ChainHead.objects.get(pk=1).seq == 5


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditevent SET reason = 'x'",
        "DELETE FROM audit_auditevent",
        "TRUNCATE audit_auditevent",
        "UPDATE audit_chaindigest SET head_seq = 0",
        "DELETE FROM audit_chaindigest",
        "TRUNCATE audit_chaindigest",
        "DELETE FROM audit_chainhead",
        "TRUNCATE audit_chainhead",
        "ALTER TABLE audit_auditevent DISABLE TRIGGER USER",
        "ALTER TABLE audit_chainhead DISABLE TRIGGER audit_head_guard",
        "DROP TRIGGER audit_event_no_truncate ON audit_auditevent",
        "DROP TABLE audit_auditevent CASCADE",
        "SET session_replication_role = replica",
    ],
)
def test_the_portals_role_cannot_rewrite_truncate_or_alter_the_trail(app_role, statement):
    write(2)

    message = refused_as(app_role, statement)

    assert "permission denied" in message or "must be owner" in message
    assert AuditEvent.objects.count() == 2
    assert verify_chain().ok


def test_the_database_check_warns_while_the_portal_could_rewrite_the_trail(app_role):
    as_superuser = checks.run_checks(databases=["default"], tags=[checks.Tags.database])
    with acting_as(app_role):
        as_app = checks.run_checks(databases=["default"], tags=[checks.Tags.database])

    assert [w.id for w in as_superuser] == ["audit.W002"]
    assert "superuser" in as_superuser[0].msg
    assert [w.id for w in as_app] == []


# --- the roles as deployed ----------------------------------------------------------------------------


def _url(user: str, database: str) -> str:
    settings = connection.settings_dict
    host, port = settings["HOST"] or "127.0.0.1", settings["PORT"] or 5432
    return f"postgres://{user}:secret@{host}:{port}/{database}"


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture
def scratch_database():
    """An empty database of its own (named after the test database, so parallel runs never meet)."""
    require_postgres()
    settings = connection.settings_dict
    name = f"{settings['NAME']}_roles"[:50]
    admin = {
        "host": settings["HOST"] or "127.0.0.1",
        "port": settings["PORT"] or 5432,
        "user": settings["USER"],
        "dbname": "postgres",
    }
    roles = (f"{name}_owner", f"{name}_app")

    def drop() -> None:
        with psycopg.connect(**admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {quote(name)} WITH (FORCE)")
            for role in roles:
                conn.execute(f"DROP ROLE IF EXISTS {quote(role)}")

    drop()
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {quote(name)}")
    yield name, roles, admin
    drop()


def test_migrating_as_the_owner_leaves_the_portals_role_able_to_append_and_nothing_more(scratch_database, tmp_path):
    name, (owner, app), admin = scratch_database
    base = {"PATH": os.environ["PATH"], "DEBUG": "1", "LOG_LEVEL": "WARNING", "AUDIT_DIGEST_DIR": str(tmp_path)}
    # What the postgres image runs on an empty data directory, here against the scratch database.
    _run(
        ["sh", str(ROOT / "docker/postgres/portal-roles.sh")],
        {
            "PATH": os.environ["PATH"],
            "PGHOST": str(admin["host"]),
            "PGPORT": str(admin["port"]),
            "POSTGRES_USER": admin["user"],
            "POSTGRES_DB": name,
            "PORTAL_DB_OWNER": owner,
            "PORTAL_DB_APP": app,
            "PORTAL_DB_OWNER_PASSWORD": "secret",
            "PORTAL_DB_APP_PASSWORD": "secret",
        },
    )
    portal = {**base, "DATABASE_URL": _url(app, name)}
    manage = [sys.executable, "manage.py"]

    migrated = _run([*manage, "migrate", "--noinput"], {**portal, "MIGRATION_DATABASE_URL": _url(owner, name)})
    _run([sys.executable, "-m", "tests.audit.chain_writer", "5", "0"], portal)
    exported = _run([*manage, "export_audit_digest"], portal)
    verified = _run([*manage, "verify_audit_chain"], portal)
    app_checks = _run([*manage, "check", "--database", "default"], portal)
    owner_checks = subprocess.run(
        [*manage, "check", "--database", "default"],
        cwd=ROOT,
        env={**base, "DATABASE_URL": _url(owner, name)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert f"Migrated as {owner}" in migrated.stdout
    assert "Digest of event #6 (intact)" in exported.stdout
    assert "Audit chain intact: 6 events verified" in verified.stdout
    assert "audit.W002" not in app_checks.stdout + app_checks.stderr
    assert "the owner of audit_auditevent" in owner_checks.stdout + owner_checks.stderr
    with psycopg.connect(**{**admin, "dbname": name}) as conn:
        owners = conn.execute("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'").fetchall()
    assert owners == [(owner,)]
    with psycopg.connect(**{**admin, "user": app, "dbname": name}, autocommit=True) as conn:
        for statement in (
            "TRUNCATE audit_auditevent",
            "DELETE FROM audit_auditevent",
            "UPDATE audit_auditevent SET reason = 'x'",
            "DELETE FROM audit_chainhead",
            "ALTER TABLE audit_auditevent DISABLE TRIGGER ALL",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        assert conn.execute("SELECT count(*) FROM audit_auditevent").fetchone() == (6,)
    assert ChainDigest.objects.count() == 0  # all of it happened in the scratch database


def test_a_partial_migrate_before_the_audit_tables_exist_still_works(scratch_database):
    name, _roles, admin = scratch_database
    env = {"PATH": os.environ["PATH"], "DEBUG": "1", "LOG_LEVEL": "WARNING"}

    _run(
        [sys.executable, "manage.py", "migrate", "contenttypes", "--noinput"],
        {**env, "DATABASE_URL": _url(admin["user"], name)},
    )
