"""The chain head, signed and written outside the database every day, and the chain checked against it.

A chain that lives only in the database can be rewritten, end to end, by whoever controls the database.
So once a day the chain is verified (against the previous digests too, audit.anchors), and its head
(sequence number and hash) signed (audit.signing), written to AUDIT_DIGEST_DIR (put it on storage the
database administrators cannot write: a WORM bucket, a separate host) and emailed to the region's IG
officers. Every scheduled verification (`verify_anchored`) then checks the database against those
files, not only against itself; what it finds raises region-wide alerts.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from . import alerts, anchors, catalogue
from .anchors import DigestFile, Finding
from .context import Actor, system_actor
from .models import AuditAlert, AuditEvent, ChainDigest, ChainHead
from .services import ChainReport, verify_chain
from .signing import canonical_bytes, sign, signature_valid

__all__ = [
    "check_digest",
    "digest_due",
    "export_digest",
    "export_due_digest",
    "record_verification",
    "signature_valid",
    "verify_anchored",
]

DOCUMENT_TYPE = "iep-audit-chain-digest"
log = structlog.get_logger("audit.digest")
ACTOR = system_actor("audit digest")


@dataclass(frozen=True)
class Verification:
    """The chain walked (`walk`), and what the digest files say besides (`findings`)."""

    walk: ChainReport
    findings: tuple[Finding, ...]
    newest: DigestFile | None
    digests: int

    @property
    def report(self) -> ChainReport:
        """One verdict: the walk's, failed too by anything the digest files found."""
        problems = tuple(f.problem for f in self.findings)
        folded = replace(self.walk, anchor_problems=problems, digests_checked=self.digests)
        if not self.findings or not self.walk.ok:
            return replace(folded, ok=self.walk.ok and not self.findings)
        first = self.findings[0]
        return replace(folded, ok=False, first_broken_seq=first.seq, problem=first.problem)


def verify_anchored(
    *,
    since_last_digest: bool = False,
    from_seq: int = 1,
    directory: Path | str | None = None,
    public_key: Ed25519PublicKey | None = None,
) -> Verification:
    """Check the database against every digest file, then walk the chain.

    `since_last_digest` walks only from the newest digest's head, when the database still holds that
    head as digested (the walk re-checks the head's link to the event before it, and that event);
    otherwise from `from_seq` (the whole chain by default).
    """
    files, findings = anchors.read_digests(directory, public_key)
    complete = directory is None or Path(directory) == Path(settings.AUDIT_DIGEST_DIR)
    findings += anchors.check(files, now=timezone.now(), complete=complete)
    # Breaks in the chain first: they are what an IG officer must look at first.
    findings.sort(key=lambda f: f.kind != AuditAlert.Kind.CHAIN_BROKEN)
    newest = anchors.newest(files)
    vouched = newest is not None and newest.head_seq > 0
    anchored = vouched and not any(f.kind == AuditAlert.Kind.CHAIN_BROKEN for f in findings)
    start = newest.head_seq if since_last_digest and anchored else from_seq
    return Verification(verify_chain(from_seq=start), tuple(findings), newest, len(files))


def _payload(report: ChainReport, previous: DigestFile | None, head: AuditEvent) -> dict[str, Any]:
    return {
        "type": DOCUMENT_TYPE,
        "version": 1,
        "portal": settings.SITE_URL,
        "audit_source_id": settings.AUDIT_SOURCE_ID,
        "generated_at": timezone.now().astimezone(UTC).isoformat(timespec="microseconds"),
        "head": {
            "seq": head.seq,
            "hash": head.hash,
            "timestamp": head.timestamp.astimezone(UTC).isoformat(timespec="microseconds"),
        },
        "events_since_previous": head.seq - (previous.head_seq if previous else 0),
        # The previous digest *file*: the files chain to each other, whatever happens to the database.
        "previous": {"head_seq": previous.head_seq, "sha256": previous.sha256} if previous else None,
        "verification": {
            "ok": report.ok,
            "from_seq": report.from_seq,
            "to_seq": report.head_seq,
            "events_checked": report.events_checked,
            "first_broken_seq": report.first_broken_seq,
            "problem": report.problem,
            "digest_problems": list(report.anchor_problems),
        },
        "retention_years": settings.AUDIT_RETENTION_YEARS,
    }


def _path(seq: int) -> Path:
    stamp = timezone.now().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path(settings.AUDIT_DIGEST_DIR) / f"audit-chain-{stamp}-{seq}.json"


def _write(document: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # "x": a digest file is never overwritten, even by a second run in the same second.
    with open(path, "x", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())


def _day_start(now: datetime | None = None) -> datetime:
    """When the current digest day began: the latest AUDIT_DIGEST_HOUR:00, local time."""
    now = timezone.localtime(now)
    start = now.replace(hour=settings.AUDIT_DIGEST_HOUR, minute=0, second=0, microsecond=0)
    return start if start <= now else start - timedelta(days=1)


def digest_due(now: datetime | None = None) -> bool:
    """True while no digest has been written since the digest day began."""
    return not ChainDigest.objects.filter(created_at__gte=_day_start(now)).exists()


def export_due_digest() -> ChainDigest | None:
    """The day's digest, once: what beat runs every AUDIT_DIGEST_CHECK_SECONDS. A day whose hour passed
    while beat was down (or before the portal first ran) gets its digest at the next check; a second
    beat, or a restarted one, never writes two for one day."""
    return _export(only_if_due=True) if digest_due() else None


def export_digest() -> ChainDigest:
    """Verify (against the digest files too), record the export, then sign, write and email a digest.

    The digest's head is the export's own record: nothing written before the digest lies outside it.
    A failed verification is written into the digest and raises its alerts; the digest still records
    the head as it stands, so the next check measures the database against it.
    """
    digest = _export(only_if_due=False)
    if digest is None:  # pragma: no cover - only an export that may skip returns None
        raise RuntimeError("the digest export returned nothing")
    return digest


def _export(*, only_if_due: bool) -> ChainDigest | None:
    """export_digest's work; `only_if_due`: nothing (None) if another export wrote the day's digest first."""
    verification = verify_anchored(since_last_digest=True)
    report = verification.report
    _alert(verification)
    with transaction.atomic():
        # Hold the chain head, so that the export's record takes the next number (which names the file).
        head = ChainHead.objects.select_for_update().filter(pk=1).values_list("seq", flat=True).first() or 0
        if only_if_due and not digest_due():  # checked under the head's lock: one export a day wins
            return None
        path = _path(head + 1)
        event = catalogue.AUDIT_DIGEST_EXPORTED.record(
            actor=ACTOR,
            outcome=0 if report.ok else 8,
            detail={"path": str(path), "ok": report.ok, "verified_to_seq": report.head_seq},
        )
        payload = _payload(report, verification.newest, event)
        signature = sign(payload)
        document = {"digest": payload, "signature": signature}
        _write(document, path)
        digest = ChainDigest.objects.create(
            head_seq=event.seq,
            head_hash=event.hash,
            payload=canonical_bytes(payload).decode(),
            signature=signature["value"],
            algorithm=signature["algorithm"],
            key_id=signature["key_id"],
            path=str(path),
            chain_ok=report.ok,
        )
    _email(document, path)
    return digest


def record_verification(verification: Verification, *, actor: Actor) -> ChainReport:
    """Raise an alert for each thing a verification found and tell people, then put it on the trail."""
    report = verification.report
    _alert(verification)
    try:
        with transaction.atomic():
            catalogue.AUDIT_CHAIN_VERIFIED.record(actor=actor, outcome=0 if report.ok else 8, detail=report.as_dict())
    except IntegrityError:
        if report.ok:
            raise
        # An event forged past the head holds the number the next one needs: the alert says so.
        log.error("audit chain refuses appends; verification not recorded", problem=report.problem)
    return report


def _alert(verification: Verification) -> None:
    # Committed and sent before anything is appended to the chain: a chain broken badly enough to refuse
    # the append (a forged event sitting where the next one must go) must still be reported.
    if verification.report.ok:
        return
    with transaction.atomic():
        raise_alerts(verification)
    alerts.notify()


def raise_alerts(verification: Verification, raised: alerts.Raised | None = None) -> list[AuditAlert]:
    found = []
    if not verification.walk.ok:
        found.append(chain_broken_alert(verification.walk, raised))
    for finding in verification.findings:
        found.append(
            alerts.raise_alert(
                kind=finding.kind,
                trust="",
                key=finding.key,
                summary=finding.problem,
                severity=AuditAlert.Severity.HIGH,
                detail={"problem": finding.problem, "seq": finding.seq},
                raised=raised,
            )
        )
    return found


def chain_broken_alert(report: ChainReport, raised: alerts.Raised | None = None) -> AuditAlert:
    # Keyed on the break, not the head: a break that stays is one alert, however many events follow it.
    return alerts.raise_alert(
        kind=AuditAlert.Kind.CHAIN_BROKEN,
        trust="",
        key=f"chain_broken:{report.first_broken_seq}:{report.problem}",
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
