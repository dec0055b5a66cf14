"""Which SOP Instance UIDs a receiver already holds, and with what content (sha256).

The same UID with the same bytes again is a harmless retry; the same UID with other bytes is a
conflict for a person to look at.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Seen:
    sha256: str
    path: str
    received_at: str


class ReceivedIndex(Protocol):
    def lookup(self, sop_instance_uid: str) -> Seen | None: ...

    def record(self, sop_instance_uid: str, sha256: str, size: int, path: Path) -> None: ...


class MemoryIndex:
    """For one retrieve: UIDs only, so it stays small however large the study."""

    def __init__(self) -> None:
        self._seen: dict[str, Seen] = {}
        self._lock = threading.Lock()

    def lookup(self, sop_instance_uid: str) -> Seen | None:
        with self._lock:
            return self._seen.get(sop_instance_uid)

    def record(self, sop_instance_uid: str, sha256: str, size: int, path: Path) -> None:
        with self._lock:
            self._seen[sop_instance_uid] = Seen(sha256, str(path), _now())


class SqliteIndex:
    """For a long-running receiver: survives restarts; safe across its association threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS received (sop_instance_uid TEXT PRIMARY KEY, sha256 TEXT NOT NULL,"
            " size INTEGER NOT NULL, path TEXT NOT NULL, received_at TEXT NOT NULL)"
        )

    def lookup(self, sop_instance_uid: str) -> Seen | None:
        with self._lock:
            row = self._db.execute(
                "SELECT sha256, path, received_at FROM received WHERE sop_instance_uid = ?", (sop_instance_uid,)
            ).fetchone()
        return Seen(*row) if row else None

    def record(self, sop_instance_uid: str, sha256: str, size: int, path: Path) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO received VALUES (?, ?, ?, ?, ?)",
                (sop_instance_uid, sha256, size, str(path), _now()),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
