"""Quarantine: the bytes of an instance we refused, with a JSON sidecar saying why.

Nothing that reaches a receiver is dropped silently; an operator can inspect, fix and re-send.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from .spool import commit, temp_path, write_durably


@dataclass(frozen=True)
class QuarantineRecord:
    path: Path
    sidecar: Path
    reason: str
    status: int
    received_at: str
    calling_ae: str = ""
    called_ae: str = ""
    peer: str = ""
    sop_instance_uid: str = ""
    sop_class_uid: str = ""
    transfer_syntax_uid: str = ""
    move_originator_ae: str = ""
    move_originator_message_id: int | None = None
    size: int = 0
    sha256: str = ""

    def as_json(self) -> dict[str, object]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["sidecar"] = str(self.sidecar)
        data["status"] = f"0x{self.status:04X}"
        return data


def quarantine_file(temp: Path, folder: Path, *, reason: str, status: int, **context: object) -> QuarantineRecord:
    """Move the fsynced temp file into `folder` and write its sidecar; both durably."""
    now = datetime.now(UTC)
    stem = f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"
    final = commit(temp, folder / f"{stem}.dcm")
    record = QuarantineRecord(
        path=final,
        sidecar=folder / f"{stem}.json",
        reason=reason,
        status=status,
        received_at=now.isoformat().replace("+00:00", "Z"),
        **context,  # type: ignore[arg-type]
    )
    _write_sidecar(record)
    return record


def move_record(record: QuarantineRecord, folder: Path, **changes: object) -> QuarantineRecord:
    """Move a quarantined instance, bytes and sidecar, into `folder` (out of a scratch spool about to be
    deleted, say); `changes` (who sent it) go into the record and its new sidecar."""
    final = commit(record.path, folder / record.path.name)
    moved = replace(record, path=final, sidecar=folder / record.sidecar.name, **changes)  # type: ignore[arg-type]
    _write_sidecar(moved)
    record.sidecar.unlink(missing_ok=True)
    return moved


def _write_sidecar(record: QuarantineRecord) -> None:
    staged = temp_path(record.sidecar.parent, ".json")
    write_durably(staged, [json.dumps(record.as_json(), indent=2).encode()])
    commit(staged, record.sidecar)


def read_sidecars(folder: Path) -> list[dict[str, object]]:
    """Every quarantine record in `folder`, oldest first."""
    if not folder.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
