"""The seventeen kinds of tampering from the security sweep, on PostgreSQL, each refused or detected.

Every test starts from a trail as the daily job leaves it: six events, then a signed digest whose head
is its own export record (#7). Each kind of tampering is then tried twice:

* as the portal's database role (what a compromised web or worker process holds): PostgreSQL refuses
  it, by privilege or by trigger, and the trail is unchanged;
* as the tables' owner with the triggers switched off (a database administrator, or anyone holding the
  owner's password): the hourly and the weekly scheduled checks both fail and raise an alert.

The one limit (docs/audit.md): an event forged through the append path itself after the last digest
passes every check, and the next digest vouches for it. The last tests pin that limit down.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError

from audit.codes import Action, EventID
from audit.context import SYSTEM, system_actor
from audit.dbroles import quote
from audit.digest import export_digest
from audit.models import AuditAlert, AuditEvent, hash_of
from audit.services import record_event, verify_chain
from audit.tasks import verify_chain_anchored, verify_chain_fully
from tests.audit.conftest import PATIENT, STUDY, acting_as, insert_event_sql, require_postgres

pytestmark = pytest.mark.django_db

TABLES = ("audit_auditevent", "audit_chaindigest", "audit_chainhead")
Statements = list[tuple[str, list]]


@pytest.fixture(autouse=True)
def digested_trail(settings) -> dict[int, dict]:
    require_postgres()
    settings.AUDIT_DIGEST_SIGNING_KEY_FILE = ""
    for i in range(6):
        record_event(
            event_id=EventID.INSTANCES_ACCESSED,
            action=Action.READ,
            actor=SYSTEM,
            trust="RAA",
            peer_trust="RBB" if i % 2 else "",
            nhs_number=PATIENT,
            study_uids=[STUDY],
            reason=f"clinical review {i}",
        )
    assert export_digest().head_seq == 7
    return rows()


def rows() -> dict[int, dict]:
    return {row["seq"]: row for row in AuditEvent.objects.order_by("seq").values()}


# --- the seventeen kinds: each returns the SQL that does it -----------------------------------------------


def edit(at: int, **changes) -> tuple[str, list]:
    sets = ", ".join(f"{name} = %s::jsonb" if name == "scope" else f"{name} = %s" for name in changes)
    values = [json.dumps(v) if name == "scope" else v for name, v in changes.items()]
    return f"UPDATE audit_auditevent SET {sets} WHERE seq = %s", [*values, at]  # noqa: S608


def rechained(trail: dict[int, dict], start: int) -> Statements:
    """Re-link and re-hash every row from `start` on, and the head: a self-consistent rewrite."""
    statements, previous = [], trail[start - 1]["hash"] if start > 1 else "0" * 64
    for seq in sorted(s for s in trail if s >= start):
        row = {**trail[seq], "prev_hash": previous}
        row["hash"] = hash_of(row)
        statements.append(edit(seq, **{k: row[k] for k in ("seq", "reason", "prev_hash", "hash")}))
        previous = row["hash"]
    newest = max(trail)
    statements.append(("UPDATE audit_chainhead SET seq = %s, hash = %s", [newest, previous]))
    return statements


def field_edit(trail):
    return [edit(3, reason="nothing to see here")]


def edit_and_fix_its_hash(trail):
    row = {**trail[3], "reason": "nothing to see here"}
    return [edit(3, reason=row["reason"], hash=hash_of(row))]


def edit_and_rechain(trail):
    return rechained({**trail, 3: {**trail[3], "reason": "nothing to see here"}}, 3)


def delete_middle(trail):
    return [("DELETE FROM audit_auditevent WHERE seq = 3", [])]


def delete_newest(trail):
    return [("DELETE FROM audit_auditevent WHERE seq = 7", [])]


def delete_first(trail):
    return [("DELETE FROM audit_auditevent WHERE seq = 1", [])]


def delete_newest_and_fix_the_head(trail):
    return [*delete_newest(trail), ("UPDATE audit_chainhead SET seq = 6, hash = %s", [trail[6]["hash"]])]


def swap(trail):
    return [
        ("UPDATE audit_auditevent SET seq = -3 WHERE seq = 3", []),
        ("UPDATE audit_auditevent SET seq = 3 WHERE seq = 4", []),
        ("UPDATE audit_auditevent SET seq = 4 WHERE seq = -3", []),
    ]


def _insert_forged_at_4(trail) -> tuple[Statements, dict[int, dict]]:
    """Make room at #4 and put a forged event there, linked to #3."""
    statements = [("UPDATE audit_auditevent SET seq = %s WHERE seq = %s", [s + 1, s]) for s in range(7, 3, -1)]
    forged = {**trail[4], "seq": 4, "prev_hash": trail[3]["hash"], "reason": "forged", "nhs_number": "9990000026"}
    forged["hash"] = hash_of(forged)
    statements.append(insert_event_sql(forged))
    shifted = {s: trail[s] for s in range(1, 4)} | {4: forged}
    shifted |= {s + 1: {**trail[s], "seq": s + 1} for s in range(4, 8)}
    return statements, shifted


def forged_insert(trail):
    return _insert_forged_at_4(trail)[0]


def forged_insert_and_rechain(trail):
    statements, shifted = _insert_forged_at_4(trail)
    # rechained() updates by seq after the shift; the rows' own seq is part of their hash.
    return statements + rechained(shifted, 5)


def change_a_hash(trail):
    return [edit(3, hash="f" * 64)]


def backdate(trail):
    return [edit(3, timestamp=trail[3]["timestamp"] - timedelta(days=30))]


def change_scope(trail):
    return [edit(4, scope=["RZZ"])]


def change_the_head(trail):
    return [("UPDATE audit_chainhead SET hash = %s", ["e" * 64])]


def truncate(trail):
    return [("TRUNCATE audit_auditevent", [])]


def truncate_and_delete_the_head(trail):
    return [("TRUNCATE audit_auditevent, audit_chaindigest", []), ("DELETE FROM audit_chainhead", [])]


def append_a_forged_row(trail):
    return _appended(trail[7], reason="forged", nhs_number="9990000026")


def _appended(after: dict, *, made_up_hash: str = "", **changes) -> Statements:
    row = {**after, "seq": after["seq"] + 1, "prev_hash": after["hash"], **changes}
    row["hash"] = made_up_hash or hash_of(row)
    return [insert_event_sql(row), ("UPDATE audit_chainhead SET seq = %s, hash = %s", [row["seq"], row["hash"]])]


KINDS: list[Callable[[dict], Statements]] = [
    field_edit,
    edit_and_fix_its_hash,
    edit_and_rechain,
    delete_middle,
    delete_newest,
    delete_first,
    delete_newest_and_fix_the_head,
    swap,
    forged_insert,
    forged_insert_and_rechain,
    change_a_hash,
    backdate,
    change_scope,
    change_the_head,
    truncate,
    truncate_and_delete_the_head,
]


# --- as the portal's role: refused ------------------------------------------------------------------------


@pytest.mark.parametrize("tamper", KINDS, ids=lambda kind: kind.__name__)
def test_the_portals_role_is_refused(tamper, digested_trail, app_role):
    statements = tamper(digested_trail)

    with pytest.raises(DatabaseError) as refused, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL ROLE {quote(app_role)}")
        for sql, params in statements:
            cursor.execute(sql, params)

    assert "permission denied" in str(refused.value) or "moves only onto the event" in str(refused.value)
    assert rows() == digested_trail
    assert verify_chain_anchored() is True


# --- as the owner, triggers off: detected ----------------------------------------------------------------


def as_owner(statements: Statements) -> None:
    """What the tables' owner can do: switch the audit triggers off, tamper, switch them back on."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE refuses while checks are pending
        for table in TABLES:
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        for sql, params in statements:
            cursor.execute(sql, params)
        for table in TABLES:
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


# The hourly check walks only from the newest digest's head; history further back is walked weekly.
CAUGHT_WITHIN_THE_HOUR = {
    edit_and_rechain,
    delete_newest,
    delete_newest_and_fix_the_head,
    forged_insert,
    forged_insert_and_rechain,
    change_the_head,
    truncate,
    truncate_and_delete_the_head,
}


@pytest.mark.parametrize("tamper", KINDS, ids=lambda kind: kind.__name__)
def test_the_owner_is_caught_by_the_scheduled_checks(tamper, digested_trail):
    as_owner(tamper(digested_trail))

    if tamper in CAUGHT_WITHIN_THE_HOUR:
        assert verify_chain_anchored() is False
    assert verify_chain_fully() is False  # weekly (Sunday): the whole chain, against every digest file
    raised = AuditAlert.objects.filter(kind__in=["chain_broken", "digest_problem"], trust="", severity="high")
    assert raised.exists()


def test_the_owner_cannot_truncate_with_the_triggers_on(digested_trail):
    """The triggers bind the owner too, until switched off (which test_the_owner_is_caught... covers)."""
    for table in TABLES:
        with (
            pytest.raises(DatabaseError, match="cannot be truncated"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"TRUNCATE {table} CASCADE")

    assert rows() == digested_trail


# --- the seventeenth kind, and the one limit --------------------------------------------------------------


def test_an_appended_row_that_does_not_follow_the_head_is_refused_even_to_the_portal(digested_trail, app_role):
    behind = {**digested_trail[7], "seq": 9}  # skips #8
    wrong_link = {**digested_trail[7], "seq": 8, "prev_hash": "d" * 64}

    for row in (behind, wrong_link):
        row["hash"] = hash_of(row)
        with (
            pytest.raises(DatabaseError, match="appended after the chain head"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(f"SET LOCAL ROLE {quote(app_role)}")
            cursor.execute(*insert_event_sql(row))


def test_an_appended_row_with_a_made_up_hash_is_detected(digested_trail, app_role):
    # A forger without the hashing rules: the row's hash is made up (the head moves onto it all the same).
    statements = _appended(digested_trail[7], reason="forged", made_up_hash="c" * 64)

    with acting_as(app_role), connection.cursor() as cursor:
        for sql, params in statements:
            cursor.execute(sql, params)

    assert verify_chain_anchored() is False
    assert verify_chain().first_broken_seq == 8


def test_the_one_limit_a_row_forged_through_the_append_path_after_the_last_digest_passes(digested_trail, app_role):
    """Stated in docs/audit.md: the portal's own role may append, and a well-formed forged event appended
    after the last digest is indistinguishable from a real one. Every check passes, and the next digest
    vouches for it. Should this test ever fail, the limit has moved: update the documentation."""
    with acting_as(app_role), connection.cursor() as cursor:
        for sql, params in append_a_forged_row(digested_trail):
            cursor.execute(sql, params)

    assert verify_chain_anchored() is True
    digest = export_digest()
    assert digest.chain_ok is True
    assert AuditEvent.objects.get(seq=8).reason == "forged"
    assert digest.head_seq > 8  # vouched for from now on
    record_event(event_id=EventID.QUERY, action=Action.EXECUTE, actor=system_actor("after"))
    assert verify_chain_fully() is True
