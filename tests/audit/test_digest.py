"""The daily signed digest of the chain head: written, emailed, and able to expose a rewritten chain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError

from audit import catalogue
from audit.context import SYSTEM
from audit.digest import check_digest, export_digest, signature_valid
from audit.models import AuditAlert, AuditEvent, ChainHead, hash_of
from audit.tasks import export_chain_digest
from tests.audit.conftest import raw_sql

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _digest_dir(settings, tmp_path):
    settings.AUDIT_DIGEST_DIR = tmp_path / "digests"
    settings.AUDIT_DIGEST_SIGNING_KEY_FILE = ""
    return settings.AUDIT_DIGEST_DIR


@pytest.fixture
def ed25519_key(settings, tmp_path) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "digest-signing.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    settings.AUDIT_DIGEST_SIGNING_KEY_FILE = str(path)
    return key


def some_events(n: int = 3) -> None:
    for i in range(n):
        catalogue.AUDIT_LOG_READ.record(actor=SYSTEM, detail={"i": i})


def document_of(digest) -> dict:
    return json.loads(Path(digest.path).read_text())


def test_the_digest_is_written_signed_recorded_and_emailed_to_the_regions_ig_officers(ada, ida, rita):
    some_events()
    head = ChainHead.objects.get(pk=1)

    digest = export_digest()

    document = document_of(digest)
    exported = AuditEvent.objects.filter(event_type="IEP162").get()
    # The digest vouches for everything up to and including its own export's record.
    assert exported.event_id == "110106"
    assert exported.prev_hash == head.hash
    assert document["digest"]["head"]["seq"] == exported.seq == head.seq + 1
    assert document["digest"]["head"]["hash"] == exported.hash
    assert document["digest"]["verification"]["ok"] is True
    assert document["digest"]["verification"]["to_seq"] == head.seq
    assert document["digest"]["retention_years"] >= 8
    assert signature_valid(document)
    assert exported.detail["path"] == digest.path
    (message,) = mail.outbox
    assert sorted(message.to) == sorted([ada.email, ida.email, rita.email])
    assert exported.hash in message.body


def test_an_ed25519_digest_verifies_with_the_public_key_alone(ed25519_key):
    some_events()

    document = document_of(export_digest())

    assert document["signature"]["algorithm"] == "Ed25519"
    assert signature_valid(document, ed25519_key.public_key())
    assert not signature_valid(document, Ed25519PrivateKey.generate().public_key())


def test_an_altered_digest_fails_its_signature(ed25519_key):
    some_events()
    document = document_of(export_digest())

    document["digest"]["head"]["seq"] += 1

    assert not signature_valid(document)
    assert check_digest(document).problem == "the digest's signature does not verify"


def test_a_chain_rewritten_end_to_end_passes_on_its_own_but_not_against_the_digest(tmp_path):
    some_events(4)
    document = document_of(export_digest())
    # The attacker rewrites event 2 and re-hashes everything after it, head included.
    previous = AuditEvent.objects.get(seq=1).hash
    for row in AuditEvent.objects.filter(seq__gte=2).order_by("seq").values():
        row["prev_hash"] = previous
        if row["seq"] == 2:
            row["reason"] = "rewritten"
        new = hash_of(row)
        raw_sql(
            "UPDATE audit_auditevent SET reason = %s, prev_hash = %s, hash = %s WHERE seq = %s",
            [row["reason"], previous, new, row["seq"]],
        )
        previous = new
    raw_sql("UPDATE audit_chainhead SET hash = %s WHERE id = 1", [previous])
    path = tmp_path / "kept.json"
    path.write_text(json.dumps(document))

    from audit.services import verify_chain

    assert verify_chain().ok  # self-consistent...
    assert not check_digest(document).ok  # ...but not what was sent out
    # The command checks the files in AUDIT_DIGEST_DIR by itself, and any kept elsewhere on request.
    with pytest.raises(CommandError, match=r"event #5 no longer has the hash the digest of .* vouched for"):
        call_command("verify_audit_chain")
    elsewhere = tmp_path / "empty"
    elsewhere.mkdir()
    with pytest.raises(CommandError, match="no longer has the digested hash"):
        call_command("verify_audit_chain", "--digest-dir", str(elsewhere), "--digest", str(path))


def test_the_next_digest_verifies_only_what_is_new_but_still_spots_a_rewrite(rita):
    some_events(3)
    export_digest()
    some_events(2)

    second = document_of(export_digest())
    # From #4, the first digest's head (its own record): the walk re-checks that it follows #3.
    assert second["digest"]["verification"]["from_seq"] == 4
    assert second["digest"]["previous"]["head_seq"] == 4

    raw_sql("UPDATE audit_auditevent SET hash = %s WHERE seq = 6", ["0" * 64])
    third = export_digest()

    assert third.chain_ok is False
    assert AuditAlert.objects.filter(kind="chain_broken", trust="").exists()
    assert any("IG alert" in m.subject for m in mail.outbox)


def test_the_beat_task_and_the_command_export_a_digest(_digest_dir, capsys):
    some_events()

    export_chain_digest()
    call_command("export_audit_digest")

    assert len(list(Path(_digest_dir).glob("audit-chain-*.json"))) == 2
    assert "written to" in capsys.readouterr().out


def test_the_beat_task_makes_one_digest_a_day_however_often_it_arrives(_digest_dir):
    """Beat re-sends the task when it restarts after a crash that lost its note of the last run."""
    some_events()
    export_chain_digest()
    mail.outbox.clear()

    export_chain_digest()
    export_chain_digest()

    assert len(list(Path(_digest_dir).glob("audit-chain-*.json"))) == 1
    assert mail.outbox == []  # the IG officers get one digest for the day


def test_digest_files_are_never_overwritten(_digest_dir):
    some_events()
    first = export_digest()
    second = export_digest()

    assert first.path != second.path
    assert Path(first.path).exists() and Path(second.path).exists()
