"""PostgreSQL itself keeps the chain append-only: no TRUNCATE, no rewriting the head, no inserting out of turn.

These statements run as the test database's owner with triggers on, as a careless or malicious
session would; tests/audit/test_tamper.py covers an owner who switches the triggers off.
"""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError

from audit.codes import Action, EventID
from audit.context import SYSTEM
from audit.models import GENESIS_HASH, AuditEvent, ChainDigest, ChainHead, hash_of
from audit.services import record_event, verify_chain
from tests.audit.conftest import insert_event_sql, raw_sql, require_postgres

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _postgres():
    require_postgres()


def write(n: int) -> list[AuditEvent]:
    return [
        record_event(event_id=EventID.QUERY, action=Action.EXECUTE, actor=SYSTEM, detail={"i": i}) for i in range(n)
    ]


def refused(sql: str, params: list | tuple = ()) -> str:
    """Run one statement in a savepoint; return PostgreSQL's refusal (the test fails if there is none)."""
    with pytest.raises(DatabaseError) as caught, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
    return str(caught.value)


@pytest.mark.parametrize("table", ["audit_auditevent", "audit_chaindigest", "audit_chainhead"])
def test_the_audit_tables_refuse_truncate(table, settings, tmp_path):
    settings.AUDIT_DIGEST_DIR = tmp_path
    from audit.digest import export_digest

    write(3)
    export_digest()

    # Django's foreign keys are deferred; firing their checks first lets TRUNCATE meet only our trigger.
    raw_sql("SET CONSTRAINTS ALL IMMEDIATE")
    assert "cannot be truncated" in refused(f"TRUNCATE {table} CASCADE")

    assert AuditEvent.objects.count() == 4  # three, and the digest's own event
    assert ChainDigest.objects.count() == 1
    assert ChainHead.objects.get(pk=1).seq == 4
    assert verify_chain().ok


def test_the_chain_head_cannot_be_deleted():
    write(2)

    assert "cannot be deleted" in refused("DELETE FROM audit_chainhead")
    assert ChainHead.objects.get(pk=1).seq == 2


@pytest.mark.parametrize(
    ("assignment", "params"),
    [
        ("seq = seq - 1", []),  # back to hide the newest event
        ("hash = %s", ["f" * 64]),  # a head of the attacker's choosing
        ("seq = seq + 1", []),  # ahead of every event
        ("seq = 1, hash = %s", [GENESIS_HASH]),
    ],
)
def test_the_chain_head_cannot_be_rewritten(assignment, params):
    events = write(3)

    assert "moves only onto the event appended" in refused(f"UPDATE audit_chainhead SET {assignment}", params)  # noqa: S608

    head = ChainHead.objects.get(pk=1)
    assert (head.seq, head.hash) == (3, events[-1].hash)


def test_the_chain_head_cannot_be_moved_back_onto_an_earlier_event():
    first, _second = write(2)

    message = refused("UPDATE audit_chainhead SET seq = %s, hash = %s", [first.seq, first.hash])

    assert "moves only onto the event appended" in message


def test_a_new_head_cannot_be_started_while_events_exist():
    write(2)
    raw_sql("DELETE FROM audit_chainhead")  # a superuser, triggers off

    message = refused("INSERT INTO audit_chainhead (id, seq, hash) VALUES (1, 0, %s)", [GENESIS_HASH])

    assert "starts once, at the genesis" in message


def forged_next(after: AuditEvent, **changes) -> dict:
    row = AuditEvent.objects.values().get(pk=after.pk)
    row.update({"seq": after.seq + 1, "prev_hash": after.hash, "reason": "forged", **changes})
    row["hash"] = hash_of(row)
    return row


@pytest.mark.parametrize(
    "changes",
    [
        {"seq": 7},  # beyond the head, leaving a gap
        {"prev_hash": "e" * 64},  # not linked to the head
    ],
)
def test_an_event_inserted_out_of_turn_is_refused(changes):
    *_, newest = write(3)
    row = forged_next(newest, **changes)

    assert "appended after the chain head" in refused(*insert_event_sql(row))
    assert AuditEvent.objects.count() == 3


def test_an_event_inserted_into_the_middle_is_refused():
    first, *_ = write(3)
    row = forged_next(first)  # claims seq 2, which exists

    refused(*insert_event_sql(row))

    assert AuditEvent.objects.count() == 3
    assert verify_chain().ok


def test_the_append_path_still_passes_every_guard():
    write(5)

    head = ChainHead.objects.get(pk=1)
    assert head.seq == 5
    assert verify_chain().ok
