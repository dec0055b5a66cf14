"""Tamper evidence: the hash chain holds, and every kind of tampering is found at its first broken link."""

from __future__ import annotations

import hashlib
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.utils import DatabaseError

from audit import catalogue
from audit.codes import Action, EventID, EventType
from audit.context import SYSTEM
from audit.models import GENESIS_HASH, AppendOnlyError, AuditEvent, ChainHead, hash_of
from audit.services import record_event, verify_chain
from tests.audit.conftest import PATIENT, STUDY, raw_sql, require_postgres

pytestmark = pytest.mark.django_db


def write(n: int) -> list[AuditEvent]:
    return [
        record_event(
            event_id=EventID.INSTANCES_ACCESSED,
            action=Action.READ,
            trust="RAA",
            nhs_number=PATIENT,
            study_uids=[STUDY],
            reason=f"clinical review {i}",
            detail={"i": i},
        )
        for i in range(n)
    ]


def test_each_event_carries_the_hash_of_the_one_before():
    first, second, third = write(3)

    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert third.prev_hash == second.hash
    assert [first.seq, second.seq, third.seq] == [1, 2, 3]
    assert ChainHead.objects.get(pk=1).hash == third.hash


def test_an_untouched_chain_verifies():
    write(5)

    report = verify_chain()

    assert report.ok
    assert report.events_checked == 5
    assert report.head_seq == 5


def test_an_empty_chain_verifies():
    assert verify_chain().ok


def test_changing_any_field_is_found_at_that_event():
    write(5)

    raw_sql("UPDATE audit_auditevent SET reason = %s WHERE seq = 3", ["nothing to see here"])

    report = verify_chain()
    assert not report.ok
    assert report.first_broken_seq == 3
    assert "altered" in report.problem


@pytest.mark.parametrize(
    ("column", "value"),
    [("nhs_number", "9990000026"), ("actor_label", "someone@else"), ("client_ip", "10.9.9.9"), ("outcome", 4)],
)
def test_changing_who_whom_or_where_is_found(column, value):
    write(3)

    raw_sql(f"UPDATE audit_auditevent SET {column} = %s WHERE seq = 2", [value])  # noqa: S608

    assert verify_chain().first_broken_seq == 2


def test_changing_a_row_and_its_own_hash_breaks_the_next_link():
    write(4)
    row = AuditEvent.objects.values().get(seq=2)
    row["reason"] = "rewritten"
    forged = hash_of(row)

    raw_sql("UPDATE audit_auditevent SET reason = %s, hash = %s WHERE seq = 2", ["rewritten", forged])

    report = verify_chain()
    assert report.first_broken_seq == 3
    assert "does not follow" in report.problem


def test_deleting_a_row_is_found():
    write(5)

    raw_sql("DELETE FROM audit_auditevent WHERE seq = 2")

    report = verify_chain()
    assert report.first_broken_seq == 2
    assert "missing" in report.problem


def test_deleting_the_newest_rows_is_found_against_the_chain_head():
    write(5)

    raw_sql("DELETE FROM audit_auditevent WHERE seq >= 4")

    report = verify_chain()
    assert not report.ok
    assert report.first_broken_seq == 4


def test_reordering_rows_is_found():
    write(5)

    raw_sql("UPDATE audit_auditevent SET seq = -2 WHERE seq = 2")
    raw_sql("UPDATE audit_auditevent SET seq = 2 WHERE seq = 3")
    raw_sql("UPDATE audit_auditevent SET seq = 3 WHERE seq = -2")

    assert verify_chain().first_broken_seq == 2


def test_verification_can_resume_from_a_trusted_point():
    write(6)

    report = verify_chain(from_seq=4)

    assert report.ok
    assert report.events_checked == 3


def test_resuming_still_checks_the_row_it_resumes_from():
    write(6)
    raw_sql("UPDATE audit_auditevent SET reason = 'x' WHERE seq = 3")

    assert verify_chain(from_seq=4).first_broken_seq == 3


def test_the_command_reports_the_first_broken_link(capsys):
    write(3)
    call_command("verify_audit_chain")
    assert "intact: 3 events" in capsys.readouterr().out

    raw_sql("UPDATE audit_auditevent SET user_agent = 'forged' WHERE seq = 2")

    with pytest.raises(CommandError, match="broken at event #2"):
        call_command("verify_audit_chain")


def test_the_application_cannot_change_or_delete_events():
    (event,) = write(1)

    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(reason="x")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.bulk_create([AuditEvent()])
    assert verify_chain().ok


def test_an_event_rolled_back_with_its_transaction_leaves_no_gap():
    write(2)
    with pytest.raises(RuntimeError), transaction.atomic():
        write(1)
        raise RuntimeError("the change failed")
    write(1)

    assert list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True)) == [1, 2, 3]
    assert verify_chain().ok


def test_rows_written_before_the_later_fields_existed_still_verify():
    """The foundation hashed 18 fields; rows it wrote (no scope, peer trust, actor ref, request id) still verify."""
    event = record_event(event_id=EventID.QUERY, action=Action.EXECUTE, actor=SYSTEM, detail={"q": 1})
    assert event.scope == [] and not event.peer_trust and not event.actor_ref
    foundation = {
        "seq": event.seq,
        "timestamp": event.timestamp.isoformat(timespec="microseconds"),
        "event_id": event.event_id,
        "event_type": event.event_type,
        "action": event.action,
        "outcome": int(event.outcome),
        "actor_type": event.actor_type,
        "actor_user": event.actor_user_id,
        "actor_label": event.actor_label,
        "trust": event.trust,
        "nhs_number": event.nhs_number,
        "patient_id": event.patient_id,
        "study_uids": list(event.study_uids),
        "client_ip": event.client_ip,
        "user_agent": event.user_agent,
        "reason": event.reason,
        "detail": event.detail,
        "prev_hash": event.prev_hash,
    }
    blob = json.dumps(foundation, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)

    assert event.hash == hashlib.sha256(blob.encode()).hexdigest()


def test_awkward_detail_values_survive_the_database_round_trip():
    record_event(
        event_id=EventID.QUERY,
        action=Action.EXECUTE,
        actor=SYSTEM,
        detail={
            "big": 1e20,
            "small": 1.5e-7,
            "nan": float("nan"),
            "nul": "a\x00b",
            "nested": {"b": [1, 2.0], "a": "é"},
        },
        reason="with a \x00 in it",
    )

    assert verify_chain().ok


def test_emergency_access_without_a_stated_reason_is_refused():
    with pytest.raises(ValueError, match="reason"):
        record_event(
            event_id=EventID.SECURITY_ALERT,
            event_type=EventType.EMERGENCY_OVERRIDE_STARTED,
            action=Action.EXECUTE,
            trust="RAA",
            reason="   ",
        )
    with pytest.raises(ValueError, match="reason"):
        catalogue.EMERGENCY_AUTO_APPROVAL.record(actor=SYSTEM, trust="RAA", peer_trust="RBB", reason="")
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize(
    "bad",
    [
        {"event_id": "999999"},
        {"action": "X"},
        {"outcome": 3},
        {"nhs_number": "12345"},
        {"trust": "TOOLONG"},
    ],
)
def test_nonsense_is_refused_rather_than_recorded(bad):
    arguments = {"event_id": EventID.QUERY, "action": Action.EXECUTE, **bad}
    with pytest.raises(ValueError):
        record_event(**arguments)


def test_postgres_refuses_update_and_delete_of_events():
    require_postgres()
    write(2)

    for statement in ("UPDATE audit_auditevent SET reason = 'x' WHERE seq = 1", "DELETE FROM audit_auditevent"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)

    assert AuditEvent.objects.count() == 2
    assert verify_chain().ok


def test_postgres_refuses_update_and_delete_of_exported_digests(settings, tmp_path):
    require_postgres()
    settings.AUDIT_DIGEST_DIR = tmp_path
    from audit.digest import export_digest

    write(1)
    export_digest()

    for statement in ("UPDATE audit_chaindigest SET head_seq = 0", "DELETE FROM audit_chaindigest"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)
