"""The chain checked against the signed digest files outside the database (AUDIT_DIGEST_DIR).

The database can vouch for itself only so far: whoever owns it can switch its triggers off, empty the
tables and start the chain again, or rewrite it end to end. The daily digest files are the anchor it
cannot reach. Each scheduled verification reads every file in the folder and finds:

* the database no longer holding a head some digest vouched for (rewritten, deleted, truncated: an
  empty table where a digest says there were events), or a chain head behind the newest digest;
* the files themselves tampered with: a signature that does not verify, a file missing between two
  others (each digest names its predecessor's SHA-256), a head going backwards from one to the next;
* a missing day: two digests more than OVERDUE apart, the newest older than that, or none at all
  although events are older than that.

What this cannot see: an event forged through the append path after the newest digest; the next
digest vouches for it (docs/audit.md, "Tamper resistance").
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings

from .models import AuditAlert, AuditEvent, ChainDigest, ChainHead
from .signing import canonical_bytes, signature_valid

# Digests are written daily (AUDIT_DIGEST_HOUR); two hours' grace for a slow or restarted beat.
OVERDUE = timedelta(hours=26)
FILE_PATTERN = "audit-chain-*.json"


@dataclass(frozen=True)
class DigestFile:
    path: Path
    payload: dict[str, Any]
    signature_ok: bool
    generated_at: datetime
    head_seq: int
    head_hash: str

    @classmethod
    def parse(cls, path: Path, document: dict[str, Any], public_key: Ed25519PublicKey | None) -> DigestFile:
        """Raises ValueError, KeyError or TypeError for a document that is not a digest."""
        payload = document["digest"]
        generated_at = datetime.fromisoformat(payload["generated_at"])
        if generated_at.tzinfo is None:
            raise ValueError("generated_at has no time zone")
        return cls(
            path=path,
            payload=payload,
            signature_ok=signature_valid(document, public_key),
            generated_at=generated_at,
            head_seq=int(payload["head"]["seq"]),
            head_hash=str(payload["head"]["hash"]),
        )

    @property
    def sha256(self) -> str:
        """What the next digest names as its predecessor."""
        return hashlib.sha256(canonical_bytes(self.payload)).hexdigest()

    @property
    def label(self) -> str:
        return f"the digest of {self.generated_at:%Y-%m-%d %H:%M} UTC ({self.path.name})"


@dataclass(frozen=True)
class Finding:
    """One thing wrong; `key` names it for the alert it raises (the same problem, the same alert)."""

    kind: str
    key: str
    problem: str
    seq: int | None = None


def read_digests(
    directory: Path | str | None = None, public_key: Ed25519PublicKey | None = None
) -> tuple[list[DigestFile], list[Finding]]:
    """Every digest file in the folder, oldest first, and a finding for each one that cannot be read."""
    folder = Path(directory or settings.AUDIT_DIGEST_DIR)
    files, findings = [], []
    for path in sorted(folder.glob(FILE_PATTERN)) if folder.is_dir() else []:
        try:
            digest = DigestFile.parse(path, json.loads(path.read_text(encoding="utf-8")), public_key)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            findings.append(
                _digest_finding(f"unreadable:{path.name}", f"digest file {path.name} cannot be read ({exc})")
            )
            continue
        files.append(digest)
    return _in_order(files), findings


def _in_order(files: list[DigestFile]) -> list[DigestFile]:
    """Oldest first; two written in the same instant in the order their `previous` links give."""
    by_sha = {f.sha256: f for f in files}

    def depth(digest: DigestFile) -> int:
        seen = set()
        while (link := (digest.payload.get("previous") or {}).get("sha256")) in by_sha and link not in seen:
            seen.add(link)
            digest = by_sha[link]
        return len(seen)

    return sorted(files, key=lambda f: (f.generated_at, depth(f), f.path.name))


def check(files: list[DigestFile], *, now: datetime, complete: bool = True) -> list[Finding]:
    """Everything wrong with the files, and with the database measured against them.

    `complete`: the files are the folder the portal writes to, so none may be missing. A copy kept
    elsewhere (`verify_audit_chain --digest-dir`) may hold only some: it is checked only for signatures
    and against the database.
    """
    valid = [f for f in files if f.signature_ok]
    findings = _unsigned(files) + _sequence(valid, complete=complete)
    if complete:
        findings += _missing_days(valid, now=now)
    return findings + _database_against(valid)


def newest(files: list[DigestFile]) -> DigestFile | None:
    valid = [f for f in files if f.signature_ok]
    return valid[-1] if valid else None


def _digest_finding(key: str, problem: str) -> Finding:
    return Finding(AuditAlert.Kind.DIGEST_PROBLEM, f"digest:{key}", problem)


def _broken(key: str, problem: str, seq: int | None) -> Finding:
    return Finding(AuditAlert.Kind.CHAIN_BROKEN, f"anchor:{key}", problem, seq)


def _unsigned(files: list[DigestFile]) -> list[Finding]:
    bad = [f for f in files if not f.signature_ok]
    if not bad:
        return []
    more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
    return [
        _digest_finding(
            f"signature:{bad[0].path.name}",
            f"{bad[0].label}{more} does not carry the portal's signature: altered, or written by someone else",
        )
    ]


def _sequence(valid: list[DigestFile], *, complete: bool) -> list[Finding]:
    findings = []
    for before, after in pairwise(valid):
        previous = after.payload.get("previous") or {}
        if complete and previous.get("sha256") != before.sha256:
            findings.append(
                _digest_finding(
                    f"gap:{after.path.name}",
                    f"a digest is missing from the folder: {after.label} follows one that is not {before.path.name}",
                )
            )
        if after.head_seq < before.head_seq:
            findings.append(
                _broken(
                    f"backwards:{after.path.name}",
                    f"the chain head went back from #{before.head_seq} to #{after.head_seq} ({after.label}): "
                    "events digested before were removed",
                    after.head_seq + 1,
                )
            )
        if complete and after.generated_at - before.generated_at > OVERDUE:
            findings.append(
                _missing_day(f"between:{before.path.name}", f"no digest between {before.label} and {after.label}")
            )
    return findings


def _missing_day(key: str, problem: str) -> Finding:
    return _digest_finding(f"missing-day:{key}", f"{problem} (one is written every day)")


def _missing_days(valid: list[DigestFile], *, now: datetime) -> list[Finding]:
    if valid:
        if now - valid[-1].generated_at > OVERDUE:
            return [_missing_day(f"since:{valid[-1].path.name}", f"no digest since {valid[-1].label}")]
        return []
    findings = []
    recorded = ChainDigest.objects.count()
    if recorded:
        findings.append(
            _digest_finding(
                f"none:{recorded}",
                f"the database lists {recorded} digest{'s' if recorded != 1 else ''} but "
                f"{settings.AUDIT_DIGEST_DIR} holds none: the files were removed, or this is not the folder",
            )
        )
    oldest = AuditEvent.objects.order_by("seq").values_list("timestamp", flat=True).first()
    if oldest is not None and now - oldest > OVERDUE:
        findings.append(_missing_day("never", f"no digest at all, though events go back to {oldest:%Y-%m-%d %H:%M}"))
    return findings


def _database_against(valid: list[DigestFile]) -> list[Finding]:
    vouched = [f for f in valid if f.head_seq > 0]
    if not vouched:
        return []
    longest = max(vouched, key=lambda f: f.head_seq)
    stored = dict(AuditEvent.objects.filter(seq__in={f.head_seq for f in vouched}).values_list("seq", "hash"))
    wrong = [f for f in vouched if stored.get(f.head_seq) != f.head_hash]
    if wrong:
        first = wrong[0]
        more = f"; {len(wrong) - 1} later digested heads do not match either" if len(wrong) > 1 else ""
        if not AuditEvent.objects.exists():
            problem = f"the audit trail is empty, but {longest.label} vouched for {longest.head_seq} events"
        elif first.head_seq not in stored:
            problem = f"event #{first.head_seq}, the head {first.label} vouched for, is missing{more}"
        else:
            problem = f"event #{first.head_seq} no longer has the hash {first.label} vouched for{more}"
        # Keyed on the first file that disagrees, not the wording: as the trail moves on, the same alert.
        return [_broken(f"head:{first.path.name}", problem, first.head_seq)]
    head = ChainHead.objects.filter(pk=1).values_list("seq", flat=True).first() or 0
    if head < longest.head_seq:
        problem = f"the chain head (#{head}) is behind {longest.label} (#{longest.head_seq})"
        return [_broken(f"behind:{longest.path.name}", problem, head + 1)]
    return []
