"""Audit fixtures: a second IG officer (ida, at trust B), patients, and helpers to read the trail."""

from __future__ import annotations

import json
from contextlib import contextmanager

import pytest
from django.db import connection

from accounts.models import User
from accounts.roles import Role
from audit.models import AuditEvent
from tests.helpers import grant, make_user, require

# Synthetic NHS numbers (valid check digits, from the 999 test range).
PATIENT = "9990000018"
OTHER_PATIENT = "9990000026"
STUDY = "1.2.826.0.1.3680043.8.498.1"
OTHER_STUDY = "1.2.826.0.1.3680043.8.498.2"


@pytest.fixture
def ida(trust_b) -> User:
    """The IG officer of trust B: must never see trust A's events."""
    return grant(make_user("ida@b.example"), trust_b, Role.IG_OFFICER)


def events(**lookup) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(**lookup).order_by("seq"))


def last_event() -> AuditEvent:
    return AuditEvent.objects.order_by("-seq").first()


def require_postgres() -> None:
    """PostgreSQL-only behaviour. CI runs on PostgreSQL, so there a skip would hide a failure: fail."""
    require(connection.vendor == "postgresql", "PostgreSQL only (set DATABASE_URL=postgres://... to run it)")


def raw_sql(sql: str, params: list | tuple = ()) -> None:
    """An attacker with database access, going round the application (and, on PostgreSQL, its trigger)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # What a database superuser can do: stop ordinary triggers firing for their session.
            cursor.execute("SET session_replication_role = replica")
        try:
            cursor.execute(sql, params)
        finally:
            if connection.vendor == "postgresql":
                cursor.execute("SET session_replication_role = origin")


JSON_COLUMNS = ("scope", "study_uids", "detail")


def insert_event_sql(row: dict) -> tuple[str, list]:
    """An INSERT of an audit event row as `AuditEvent.objects.values()` gives it (without its id)."""
    columns = [name for name in row if name != "id"]
    placeholders = ", ".join("%s::jsonb" if name in JSON_COLUMNS else "%s" for name in columns)
    values = [json.dumps(row[name]) if name in JSON_COLUMNS else row[name] for name in columns]
    return f"INSERT INTO audit_auditevent ({', '.join(columns)}) VALUES ({placeholders})", values  # noqa: S608


@pytest.fixture
def app_role(db) -> str:
    """The portal's database role, made and granted as `migrate` grants it, inside the test's transaction
    (so rolled back with it)."""
    from audit.dbroles import grant_app_role, quote

    require_postgres()
    name = f"{connection.settings_dict['NAME']}_app"[:63]
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {quote(name)} NOLOGIN NOINHERIT")
        grant_app_role(cursor, name)
    return name


@contextmanager
def acting_as(role: str):
    """Everything inside runs with `role`'s privileges, as the portal connecting as it would."""
    from audit.dbroles import quote

    with connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {quote(role)}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
