"""The chain head, signed and sent off the database every day.

A chain that lives only in the database can be rewritten, end to end, by whoever controls the database.
So once a day the head (sequence number and hash) is verified, signed, written to AUDIT_DIGEST_DIR (put
it on storage the database administrators cannot write: a WORM bucket, a separate host) and emailed to
the region's IG officers. Later, `manage.py verify_audit_chain --digest FILE` proves the chain still
passes through every digested head; a rewritten history cannot, without the signing key and the mailboxes.

Signing: Ed25519 with the PEM private key in AUDIT_DIGEST_SIGNING_KEY_FILE (recommended: anyone holding
the public key can check a digest, nobody without the private key can forge one). Without it, HMAC-SHA256
keyed from SECRET_KEY, which only holders of SECRET_KEY can check (or forge).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.crypto import salted_hmac

from . import alerts, catalogue
from .context import system_actor
from .models import AuditAlert, AuditEvent, ChainDigest
from .services import ChainReport, verify_chain

DOCUMENT_TYPE = "iep-audit-chain-digest"
ACTOR = system_actor("audit digest")


def _canonical_bytes(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _private_key() -> Ed25519PrivateKey | None:
    if not settings.AUDIT_DIGEST_SIGNING_KEY_FILE:
        return None
    key = serialization.load_pem_private_key(Path(settings.AUDIT_DIGEST_SIGNING_KEY_FILE).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("AUDIT_DIGEST_SIGNING_KEY_FILE must hold an Ed25519 private key (PEM).")
    return key


def _key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def sign(payload: dict[str, Any]) -> dict[str, str]:
    blob = _canonical_bytes(payload)
    key = _private_key()
    if key is not None:
        signature = key.sign(blob)
        return {
            "algorithm": "Ed25519",
            "key_id": _key_id(key.public_key()),
            "value": base64.b64encode(signature).decode(),
        }
    mac = salted_hmac("audit.digest", blob, algorithm="sha256").digest()
    return {"algorithm": "HMAC-SHA256", "key_id": "secret-key", "value": base64.b64encode(mac).decode()}


def signature_valid(document: dict[str, Any], public_key: Ed25519PublicKey | None = None) -> bool:
    """Check a digest document's signature, with the given public key or the configured signing key."""
    payload, signature = document.get("digest"), document.get("signature") or {}
    if not isinstance(payload, dict):
        return False
    value = base64.b64decode(signature.get("value", ""))
    blob = _canonical_bytes(payload)
    if signature.get("algorithm") == "Ed25519":
        key = public_key or (_private_key().public_key() if _private_key() else None)
        if key is None:
            return False
        try:
            key.verify(value, blob)
        except InvalidSignature:
            return False
        return True
    if signature.get("algorithm") == "HMAC-SHA256":
        expected = salted_hmac("audit.digest", blob, algorithm="sha256").digest()
        return hmac.compare_digest(expected, value)
    return False


def _payload(report: ChainReport, previous: ChainDigest | None) -> dict[str, Any]:
    head_time = AuditEvent.objects.filter(seq=report.head_seq).values_list("timestamp", flat=True).first()
    return {
        "type": DOCUMENT_TYPE,
        "version": 1,
        "portal": settings.SITE_URL,
        "audit_source_id": settings.AUDIT_SOURCE_ID,
        "generated_at": timezone.now().astimezone(UTC).isoformat(timespec="seconds"),
        "head": {
            "seq": report.head_seq,
            "hash": report.head_hash,
            "timestamp": head_time.astimezone(UTC).isoformat(timespec="microseconds") if head_time else None,
        },
        "events_since_previous": report.head_seq - (previous.head_seq if previous else 0),
        "previous": (
            {"head_seq": previous.head_seq, "sha256": hashlib.sha256(previous.payload.encode()).hexdigest()}
            if previous
            else None
        ),
        "verification": {
            "ok": report.ok,
            "from_seq": report.from_seq,
            "events_checked": report.events_checked,
            "first_broken_seq": report.first_broken_seq,
            "problem": report.problem,
        },
        "retention_years": settings.AUDIT_RETENTION_YEARS,
    }


def _write(document: dict[str, Any], head_seq: int) -> Path:
    directory = Path(settings.AUDIT_DIGEST_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    stamp = timezone.now().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"audit-chain-{stamp}-{head_seq}.json"
    # "x": a digest file is never overwritten, even by a second run in the same second.
    with open(path, "x", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    return path


def verify_since_last_digest() -> tuple[ChainReport, ChainDigest | None]:
    """Verify from the previous digest's head, after checking that head still stands where it stood."""
    previous = ChainDigest.objects.order_by("-head_seq", "-pk").first()
    if previous is None or previous.head_seq == 0:
        return verify_chain(), previous
    anchor = AuditEvent.objects.filter(seq=previous.head_seq).values_list("hash", flat=True).first()
    if anchor != previous.head_hash:
        report = verify_chain()
        if report.ok:  # the rows agree with each other but not with what was sent out: rewritten
            report = ChainReport(
                False,
                report.events_checked,
                previous.head_seq,
                f"event #{previous.head_seq} no longer has the hash digested on {previous.created_at:%Y-%m-%d}",
                report.head_seq,
                report.head_hash,
            )
        return report, previous
    return verify_chain(from_seq=previous.head_seq + 1), previous


def export_digest() -> ChainDigest:
    """Verify, sign, write, record, then email the digest; a failed verification also raises an alert."""
    with transaction.atomic():
        report, previous = verify_since_last_digest()
        payload = _payload(report, previous)
        signature = sign(payload)
        document = {"digest": payload, "signature": signature}
        path = _write(document, report.head_seq)
        digest = ChainDigest.objects.create(
            head_seq=report.head_seq,
            head_hash=report.head_hash,
            payload=_canonical_bytes(payload).decode(),
            signature=signature["value"],
            algorithm=signature["algorithm"],
            key_id=signature["key_id"],
            path=str(path),
            chain_ok=report.ok,
        )
        catalogue.AUDIT_DIGEST_EXPORTED.record(
            actor=ACTOR,
            outcome=0 if report.ok else 8,
            detail={"head_seq": report.head_seq, "head_hash": report.head_hash, "path": str(path), "ok": report.ok},
        )
        raised = alerts.Raised(created=[])
        if not report.ok:
            chain_broken_alert(report, raised)
    alerts.notify()
    _email(document, path)
    return digest


def record_verification(report: ChainReport, *, actor) -> None:
    """Put a verification on the trail; if it failed, raise the region-wide alert and tell people."""
    raised = alerts.Raised(created=[])
    with transaction.atomic():
        catalogue.AUDIT_CHAIN_VERIFIED.record(actor=actor, outcome=0 if report.ok else 8, detail=report.as_dict())
        if not report.ok:
            chain_broken_alert(report, raised)
    alerts.notify()


def chain_broken_alert(report: ChainReport, raised: alerts.Raised | None = None) -> AuditAlert:
    return alerts.raise_alert(
        kind=AuditAlert.Kind.CHAIN_BROKEN,
        trust="",
        key=f"chain_broken:{report.first_broken_seq}:{report.head_hash}",
        summary=f"Audit chain verification failed at event #{report.first_broken_seq}: {report.problem}",
        severity=AuditAlert.Severity.HIGH,
        detail={"verification": report.as_dict()},
        raised=raised,
    )


def digest_recipients() -> list[str]:
    return sorted(set(alerts.recipients("")) | set(settings.AUDIT_DIGEST_RECIPIENTS))


def _email(document: dict[str, Any], path: Path) -> None:
    to = digest_recipients()
    if not to:
        return
    text = json.dumps(document, indent=2, sort_keys=True)
    body = render_to_string("audit/email/digest.txt", {"digest": document["digest"], "document": text, "path": path})
    head = document["digest"]["head"]
    send_mail(f"[Image Exchange] Audit chain digest: event #{head['seq']}", body, None, to)


@dataclass(frozen=True)
class DigestCheck:
    ok: bool
    problem: str = ""


def check_digest(document: dict[str, Any], public_key: Ed25519PublicKey | None = None) -> DigestCheck:
    """Does the database still hold the head this digest vouched for? (Run with a full verify_chain.)"""
    if not signature_valid(document, public_key):
        return DigestCheck(False, "the digest's signature does not verify")
    head = document["digest"]["head"]
    stored = AuditEvent.objects.filter(seq=head["seq"]).values_list("hash", flat=True).first()
    if head["seq"] and stored is None:
        return DigestCheck(False, f"event #{head['seq']}, the digested head, is missing")
    if head["seq"] and stored != head["hash"]:
        return DigestCheck(False, f"event #{head['seq']} no longer has the digested hash")
    return DigestCheck(True)
