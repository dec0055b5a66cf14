"""Who may do what to the audit tables on PostgreSQL: the owner migrates; the portal's role reads and appends.

A table's owner can truncate it, alter it and switch its triggers off, so the role the portal runs as
(DATABASE_URL) must not own the audit tables. `manage.py migrate` connects as the owner when
MIGRATION_DATABASE_URL is set, then grants the portal's role what it needs: everything it uses on the
working tables, and on the audit tables only reading and appending (plus moving the chain head, which
migration 0005's trigger allows only onto the event just appended).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

# What the portal's own role may do to each audit table. Ownership (ALTER, DROP, triggers) stays with
# the migrating role; UPDATE, DELETE, TRUNCATE, REFERENCES and TRIGGER are granted to nobody else.
APP_PRIVILEGES = {
    "audit_auditevent": ("SELECT", "INSERT"),
    "audit_chaindigest": ("SELECT", "INSERT"),
    "audit_chainhead": ("SELECT", "INSERT", "UPDATE"),  # FOR UPDATE locks it; the trigger vets each move
}
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
WORKING_TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def grant_app_role(cursor: Any, role: str) -> None:
    """Give `role` (the portal's) what it needs on every table in the schema, and no more on the audit ones."""
    cursor.execute("SELECT current_schema()")
    schema, who = quote(cursor.fetchone()[0]), quote(role)
    cursor.execute(f"GRANT USAGE ON SCHEMA {schema} TO {who}")
    cursor.execute(f"GRANT {WORKING_TABLE_PRIVILEGES} ON ALL TABLES IN SCHEMA {schema} TO {who}")
    cursor.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {who}")
    restrict_audit_tables(cursor)


def restrict_audit_tables(cursor: Any) -> None:
    """Take from every role but the owner any privilege on the audit tables beyond APP_PRIVILEGES."""
    for table, allowed in APP_PRIVILEGES.items():
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
        if not cursor.fetchone()[0]:
            continue  # a partial migrate, before the audit app's tables exist
        forbidden = ", ".join(p for p in TABLE_PRIVILEGES if p not in allowed)
        cursor.execute(f"REVOKE {forbidden} ON {quote(table)} FROM PUBLIC")
        for grantee in _grantees(cursor, table):
            cursor.execute(f"REVOKE {forbidden} ON {quote(table)} FROM {quote(grantee)}")


def _grantees(cursor: Any, table: str) -> list[str]:
    cursor.execute(
        """
        SELECT DISTINCT pg_get_userbyid(acl.grantee)
        FROM pg_class c, aclexplode(c.relacl) AS acl
        WHERE c.oid = to_regclass(%s) AND acl.grantee <> 0 AND acl.grantee <> c.relowner
        """,
        [table],
    )
    return [row[0] for row in cursor.fetchall()]


def privilege_problems(cursor: Any) -> list[str]:
    """What the connected role could do to the audit trail that the portal never needs to."""
    cursor.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")
    user, superuser = cursor.fetchone()
    if superuser:
        return [f"the portal connects to PostgreSQL as {user}, a superuser, who can rewrite the audit trail"]
    problems = []
    for table, allowed in APP_PRIVILEGES.items():
        cursor.execute("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = to_regclass(%s)", [table])
        row = cursor.fetchone()
        if row is None:
            continue  # not migrated yet
        if row[0] == user:
            problems.append(f"the portal connects as {user}, the owner of {table}, who can truncate or alter it")
            continue
        extra = [p for p in TABLE_PRIVILEGES if p not in allowed and _has(cursor, table, p)]
        if extra:
            problems.append(f"the portal's role {user} holds {', '.join(extra)} on {table}")
    return problems


def _has(cursor: Any, table: str, privilege: str) -> bool:
    cursor.execute("SELECT has_table_privilege(%s, %s)", [table, privilege])
    return bool(cursor.fetchone()[0])


@contextmanager
def connected_as(connection: Any, credentials: Mapping[str, Any]) -> Iterator[None]:
    """Reconnect `connection` (a Django connection) with another role's USER and PASSWORD, then back."""
    saved = {key: connection.settings_dict.get(key) for key in ("USER", "PASSWORD")}
    connection.close()
    connection.settings_dict.update({key: credentials.get(key) for key in saved})
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.update(saved)
