"""What every benchmark script writes: its figures as JSON, with the machine, the date and the commit.

    from record import Run

    with Run(__file__, arguments=vars(args)) as run:
        ...
        run.figure("first_image_ms", 452.0, "ms", label="first image, median of 5 links", target=("<", 1000))

On leaving the block without an error (a `SystemExit` counts as finishing: scripts exit 1 when a target
is missed), the run is written to `benchmarks/results/<script>/<UTC time>.json`. `benchmarks/report.py`
makes the README's results table from the newest file of each script (`make results`). Figures with a
`label` are the ones the README shows; the rest are kept for whoever reads the file.

The machine is described, not named: `host_id` is a short hash of /etc/machine-id (so runs on one
machine can be told from runs on another), with the CPU count and model, memory, and the load average
at the start and the end (the machines here are shared; load moves every figure).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# BENCH_RESULTS_DIR elsewhere for a trial run whose figures should not become the README's.
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR") or ROOT / "benchmarks" / "results")
SCHEMA = 1
OPERATORS = {"<": float.__lt__, "<=": float.__le__, ">": float.__gt__, ">=": float.__ge__}


def host_id() -> str:
    """12 hex digits standing for this machine: stable across runs and reboots, naming nothing."""
    for source in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            seed = Path(source).read_text().strip()
        except OSError:
            continue
        if seed:
            return hashlib.sha256(f"image-exchange-bench:{seed}".encode()).hexdigest()[:12]
    return hashlib.sha256(f"image-exchange-bench:{platform.node()}".encode()).hexdigest()[:12]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def machine() -> dict[str, Any]:
    return {
        "host_id": host_id(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": _memory_gb(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def commit() -> dict[str, Any]:
    """The checked-out commit, and whether files other than results differed from it."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "HEAD")
    changed = [line for line in git("status", "--porcelain").splitlines() if "benchmarks/results/" not in line]
    return {"commit": head or None, "dirty": bool(changed) if head else None}


class Run:
    """One invocation of a benchmark script: collects its figures, writes them when it ends well."""

    def __init__(self, script: str, *, arguments: Mapping[str, Any] | None = None) -> None:
        self.benchmark = Path(script).stem
        self.arguments = {k: v for k, v in (arguments or {}).items() if not k.startswith("_")}
        self.figures: dict[str, dict[str, Any]] = {}
        self.notes: list[str] = []
        self.path: Path | None = None
        self._started = time.monotonic()
        self._date = datetime.now(UTC)
        self._load_start = _load()

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if (kind is None or issubclass(kind, SystemExit)) and self.figures:
            self.save()

    def figure(
        self,
        name: str,
        value: float,
        unit: str,
        *,
        label: str = "",
        target: tuple[str, float] | None = None,
        **detail: Any,
    ) -> float:
        """Record one figure (and return it). `target` is (operator, bound), e.g. ("<", 100.0)."""
        entry: dict[str, Any] = {"value": float(value), "unit": unit}
        if label:
            entry["label"] = label
        if target is not None:
            op, bound = target
            entry["target"] = {"op": op, "value": float(bound)}
            entry["met"] = bool(OPERATORS[op](float(value), float(bound)))
        if detail:
            entry["detail"] = detail
        self.figures[name] = entry
        return value

    def note(self, text: str) -> None:
        """A sentence the README's table should carry beside this run's figures (the conditions)."""
        self.notes.append(text)

    @property
    def targets_met(self) -> bool | None:
        verdicts = [f["met"] for f in self.figures.values() if "met" in f]
        return all(verdicts) if verdicts else None

    def as_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "benchmark": self.benchmark,
            "date": self._date.strftime("%Y-%m-%dT%H:%M:%SZ"),
            **commit(),
            "machine": {
                **machine(),
                "load_average_start": self._load_start,
                "load_average_end": _load(),
            },
            "seconds": round(time.monotonic() - self._started, 1),
            "arguments": self.arguments,
            "figures": self.figures,
            "notes": self.notes,
            "targets_met": self.targets_met,
        }

    def save(self) -> Path:
        folder = RESULTS / self.benchmark
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{self._date.strftime('%Y-%m-%dT%H%M%SZ')}-{host_id()}.json"
        self.path.write_text(json.dumps(self.as_json(), indent=2, ensure_ascii=False, default=str) + "\n")
        try:
            shown = self.path.relative_to(ROOT)
        except ValueError:
            shown = self.path
        print(f"figures written to {shown}", flush=True)
        return self.path
