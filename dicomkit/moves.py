"""C-MOVE jobs: how a receiver knows which retrieve an arriving instance belongs to.

The worker that issues a C-MOVE registers a job (a small JSON file in the receiver's jobs folder,
so it works across processes on one host); the receiver, on each arrival, finds the job and puts
the file in that job's spool folder, where the waiting retrieve picks it up.

Matching, most specific first: Move Originator AE + Message ID (PS3.7 9.1.1.1) and study; then
study (and series / SOP list) alone, for peers that do not fill the originator fields.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .spool import commit, temp_path, write_durably

DEFAULT_MAX_AGE = 24 * 3600.0


@dataclass(frozen=True)
class MoveDestination:
    """Where a C-MOVE should send: our receiver's AE title and its jobs folder."""

    ae_title: str
    jobs_dir: Path


@dataclass(frozen=True)
class MoveJob:
    spool_dir: Path
    study_instance_uid: str
    series_instance_uid: str = ""
    sop_instance_uids: tuple[str, ...] = ()
    originator_ae: str = ""
    message_id: int = field(default_factory=lambda: secrets.randbelow(65_000) + 1)
    label: str = ""
    job_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: float = field(default_factory=time.time)

    def wants(self, study: str, series: str, sop: str) -> bool:
        if study != self.study_instance_uid:
            return False
        if self.series_instance_uid and series != self.series_instance_uid:
            return False
        return not self.sop_instance_uids or sop in self.sop_instance_uids

    def to_json(self) -> str:
        data = asdict(self)
        data["spool_dir"] = str(self.spool_dir)
        data["sop_instance_uids"] = list(self.sop_instance_uids)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> MoveJob:
        data = json.loads(text)
        data["spool_dir"] = Path(data["spool_dir"])
        data["sop_instance_uids"] = tuple(data.get("sop_instance_uids") or ())
        return cls(**data)


class MoveRegistry:
    """The jobs folder. Cheap to consult on every arrival: files are re-read only when they change."""

    def __init__(self, jobs_dir: Path, *, max_age: float = DEFAULT_MAX_AGE) -> None:
        self.jobs_dir = Path(jobs_dir)
        self.max_age = max_age
        self._cache: dict[str, tuple[int, MoveJob]] = {}
        self._lock = threading.Lock()

    def register(self, job: MoveJob) -> MoveJob:
        job.spool_dir.mkdir(parents=True, exist_ok=True)
        staged = temp_path(self.jobs_dir, ".json")
        write_durably(staged, [job.to_json().encode()])
        commit(staged, self.jobs_dir / f"{job.job_id}.json")
        return job

    def remove(self, job: MoveJob) -> None:
        (self.jobs_dir / f"{job.job_id}.json").unlink(missing_ok=True)

    def active(self) -> list[MoveJob]:
        """Registered jobs that are young enough and whose spool folder still exists, oldest first."""
        jobs: list[MoveJob] = []
        now = time.time()
        with self._lock:
            seen: set[str] = set()
            try:
                entries = list(os.scandir(self.jobs_dir))
            except FileNotFoundError:
                entries = []
            for entry in entries:
                if not entry.name.endswith(".json") or entry.name.startswith("."):
                    continue
                seen.add(entry.name)
                job = self._load(entry)
                if job and now - job.created_at < self.max_age and job.spool_dir.is_dir():
                    jobs.append(job)
            for stale in set(self._cache) - seen:
                del self._cache[stale]
        return sorted(jobs, key=lambda j: j.created_at)

    def _load(self, entry: os.DirEntry[str]) -> MoveJob | None:
        try:
            mtime = entry.stat().st_mtime_ns
            cached = self._cache.get(entry.name)
            if cached and cached[0] == mtime:
                return cached[1]
            job = MoveJob.from_json(Path(entry.path).read_text())
        except (OSError, ValueError, TypeError, KeyError):
            return None  # half-removed or foreign file: not a job we can serve
        self._cache[entry.name] = (mtime, job)
        return job

    def match(
        self, *, study: str, series: str, sop: str, originator_ae: str = "", message_id: int | None = None
    ) -> MoveJob | None:
        jobs = [j for j in self.active() if j.wants(study, series, sop)]
        if originator_ae and message_id:
            for job in jobs:
                if job.message_id == message_id and job.originator_ae.strip() == originator_ae.strip():
                    return job
        return jobs[0] if jobs else None
