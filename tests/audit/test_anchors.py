"""The scheduled checks measure the database against the signed digest files outside it, and raise alerts.

The first tests are the security sweep's finding: an emptied trail (events, digests and chain head)
passed every check.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from audit import catalogue
from audit.context import SYSTEM
from audit.digest import export_digest
from audit.models import AuditAlert, AuditEvent, hash_of
from audit.tasks import verify_chain_anchored, verify_chain_fully
from tests.audit.conftest import raw_sql

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _hmac_signing(settings):
    settings.AUDIT_DIGEST_SIGNING_KEY_FILE = ""


def at(moment: datetime):
    """Run as if it were `moment` (events, digests and checks alike)."""
    return mock.patch("django.utils.timezone.now", return_value=moment)


def some_events(n: int = 3) -> None:
    for i in range(n):
        catalogue.AUDIT_LOG_READ.record(actor=SYSTEM, detail={"i": i})


def empty_the_trail() -> None:
    """What the sweep did as the tables' owner: events and digests gone, the chain head deleted."""
    if connection.vendor == "postgresql":
        raw_sql("SET CONSTRAINTS ALL IMMEDIATE")  # fire the deferred foreign-key checks TRUNCATE waits for
        raw_sql("TRUNCATE audit_auditevent, audit_chaindigest CASCADE")
    else:
        raw_sql("DELETE FROM audit_auditevent")
        raw_sql("DELETE FROM audit_chaindigest")
    raw_sql("DELETE FROM audit_chainhead")


def digest_files(settings) -> list[Path]:
    return sorted(Path(settings.AUDIT_DIGEST_DIR).glob("audit-chain-*.json"))


def alert_summaries(kind: str) -> list[str]:
    return list(AuditAlert.objects.filter(kind=kind, trust="").values_list("summary", flat=True))


# --- the sweep's finding -------------------------------------------------------------------------------


def test_an_emptied_trail_fails_the_command_where_a_digest_says_there_were_events():
    some_events(4)
    export_digest()
    empty_the_trail()

    with pytest.raises(CommandError, match=r"the audit trail is empty, but the digest of .* vouched for 5 events"):
        call_command("verify_audit_chain")


def test_an_emptied_trail_fails_the_weekly_verification_and_raises_an_alert(rita):
    some_events(4)
    export_digest()
    empty_the_trail()
    mail.outbox.clear()

    assert verify_chain_fully() is False

    (summary,) = alert_summaries("chain_broken")
    assert "the audit trail is empty" in summary
    assert any("IG alert" in m.subject and rita.email in m.to for m in mail.outbox)


def test_an_emptied_trail_is_digested_as_broken_not_intact(capsys):
    some_events(4)
    export_digest()
    empty_the_trail()

    with pytest.raises(CommandError, match="BROKEN"):
        call_command("export_audit_digest")

    assert alert_summaries("chain_broken")


def test_the_hourly_check_finds_an_emptied_trail():
    some_events(2)
    export_digest()
    empty_the_trail()

    assert verify_chain_anchored() is False
    assert alert_summaries("chain_broken")


def test_a_chain_rewritten_end_to_end_fails_the_weekly_verification():
    some_events(4)
    export_digest()
    previous = AuditEvent.objects.get(seq=1).hash
    for row in AuditEvent.objects.filter(seq__gte=2).order_by("seq").values():
        row.update(prev_hash=previous, reason="rewritten" if row["seq"] == 2 else row["reason"])
        row["hash"] = hash_of(row)
        raw_sql(
            "UPDATE audit_auditevent SET reason = %s, prev_hash = %s, hash = %s WHERE seq = %s",
            [row["reason"], row["prev_hash"], row["hash"], row["seq"]],
        )
        previous = row["hash"]
    raw_sql("UPDATE audit_chainhead SET hash = %s", [previous])

    assert verify_chain_fully() is False
    (summary,) = alert_summaries("chain_broken")
    assert "event #5 no longer has the hash the digest of" in summary


# --- the digest files themselves -----------------------------------------------------------------------


def test_daily_digests_over_an_intact_trail_pass_with_no_alert():
    for day in range(3):
        with at(START + timedelta(days=day)):
            some_events(2)
            export_digest()
    with at(START + timedelta(days=2, hours=5)):
        assert verify_chain_anchored() is True
        call_command("verify_audit_chain")

    assert not AuditAlert.objects.exists()


def test_no_digest_for_more_than_a_day_is_a_missing_day():
    with at(START):
        some_events()
        export_digest()

    with at(START + timedelta(hours=27)):
        assert verify_chain_anchored() is False

    (summary,) = alert_summaries("digest_problem")
    assert summary.startswith("no digest since the digest of 2026-03-02 02:00 UTC")


def test_two_digests_more_than_a_day_apart_leave_a_missing_day():
    with at(START):
        some_events()
        export_digest()
    with at(START + timedelta(days=2)):
        export_digest()

    with at(START + timedelta(days=2, hours=1)):
        assert verify_chain_anchored() is False

    assert any(s.startswith("no digest between the digest of 2026-03-02") for s in alert_summaries("digest_problem"))


def test_a_trail_with_no_digest_at_all_after_a_day_is_a_missing_day():
    with at(START):
        some_events()

    with at(START + timedelta(hours=30)):
        assert verify_chain_anchored() is False

    assert any("no digest at all" in s for s in alert_summaries("digest_problem"))


def test_a_digest_file_removed_from_the_middle_is_found(settings):
    for hour in range(3):
        with at(START + timedelta(hours=hour)):
            some_events(1)
            export_digest()
    _first, middle, last = digest_files(settings)
    middle.unlink()

    with at(START + timedelta(hours=4)):
        assert verify_chain_anchored() is False

    (summary,) = alert_summaries("digest_problem")
    assert f"a digest is missing from the folder: the digest of 2026-03-02 04:00 UTC ({last.name})" in summary


def test_every_digest_file_removed_while_the_database_lists_them_is_found(settings):
    some_events()
    export_digest()
    export_digest()
    for path in digest_files(settings):
        path.unlink()

    assert verify_chain_anchored() is False
    assert any("the database lists 2 digests but" in s for s in alert_summaries("digest_problem"))


def test_an_altered_digest_file_is_found(settings):
    some_events()
    export_digest()
    (path,) = digest_files(settings)
    document = json.loads(path.read_text())
    document["digest"]["head"]["seq"] = 1  # as if the chain had been shorter
    path.write_text(json.dumps(document))

    assert verify_chain_anchored() is False
    assert any("does not carry the portal's signature" in s for s in alert_summaries("digest_problem"))


def test_a_digest_planted_with_another_key_is_not_believed(settings, tmp_path):
    some_events()
    export_digest()
    key_file = tmp_path / "mine.pem"
    key_file.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    settings.AUDIT_DIGEST_SIGNING_KEY_FILE = str(key_file)
    export_digest()  # signed with a key the portal's HMAC check does not know
    settings.AUDIT_DIGEST_SIGNING_KEY_FILE = ""

    report = verify_chain_anchored()

    assert report is False
    assert any("does not carry the portal's signature" in s for s in alert_summaries("digest_problem"))


def test_an_unreadable_digest_file_is_found(settings):
    some_events()
    export_digest()
    (Path(settings.AUDIT_DIGEST_DIR) / "audit-chain-20260302T020000Z-9.json").write_text("{not json")

    assert verify_chain_anchored() is False
    assert any("cannot be read" in s for s in alert_summaries("digest_problem"))


def test_a_head_that_went_back_between_digests_stays_found(settings):
    some_events(3)
    export_digest()
    empty_the_trail()
    some_events(1)  # the portal carries on from a new, short chain...
    export_digest()  # ...and the next digest vouches for it

    assert verify_chain_anchored() is False
    summaries = alert_summaries("chain_broken")
    assert any("the chain head went back from #4 to #2" in s for s in summaries)
    assert any(s.startswith("event #4, the head the digest of") and "is missing" in s for s in summaries)


def test_a_problem_that_persists_is_one_alert_and_one_email(rita):
    some_events(3)
    export_digest()
    empty_the_trail()
    mail.outbox.clear()

    for _ in range(3):
        verify_chain_anchored()
        some_events(1)  # the chain carries on between checks

    assert AuditAlert.objects.filter(kind="chain_broken").count() == 1
    assert len([m for m in mail.outbox if "IG alert" in m.subject]) == 1
