"""Benchmarks record their runs (benchmarks/record.py) and the README's table is made from the newest
(benchmarks/report.py). No benchmark is run here: these check the recording and the report."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("benchmarks_report", BENCHMARKS / "report.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # puts benchmarks/ on the path and imports record
    return module


@pytest.fixture
def record(report):
    return sys.modules["record"]


@pytest.fixture
def results(tmp_path, monkeypatch, report, record):
    monkeypatch.setattr(record, "RESULTS", tmp_path)
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    return tmp_path


def test_every_benchmark_script_records_its_runs(report):
    scripts = {
        path.stem
        for path in BENCHMARKS.glob("*.py")
        if re.search(r"^if __name__ == .__main__.:", path.read_text(), re.MULTILINE) and path.stem != "report"
    }
    assert scripts == set(report.benchmarks()), (
        "every script in benchmarks/ must record its runs with `with Run(__file__, ...) as run:` (record.py); "
        f"these do not: {sorted(scripts - set(report.benchmarks()))}"
    )


def test_a_run_is_written_with_its_machine_date_commit_and_figures(results, record):
    with record.Run("/somewhere/bench_x.py", arguments={"runs": 3}) as run:
        run.figure("first_ms", 12.5, "ms", label="first", target=("<", 100), max=20.0)
        run.figure("rate", 10.0, "images/s", target=(">=", 20))
        run.figure("plain", 1.0, "")
    data = json.loads(run.path.read_text())
    assert run.path.parent == results / "bench_x"
    assert data["schema"] == 1 and data["benchmark"] == "bench_x"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", data["date"])
    if data["commit"] is not None:  # None only outside a git checkout
        assert re.fullmatch(r"[0-9a-f]{40}", data["commit"]) and isinstance(data["dirty"], bool)
    machine = data["machine"]
    assert re.fullmatch(r"[0-9a-f]{12}", machine["host_id"]) and machine["host_id"] == record.host_id()
    assert machine["cpu_count"] >= 1 and len(machine["load_average_start"]) == 3
    assert data["arguments"] == {"runs": 3}
    assert data["figures"]["first_ms"] == {
        "value": 12.5,
        "unit": "ms",
        "label": "first",
        "target": {"op": "<", "value": 100.0},
        "met": True,
        "detail": {"max": 20.0},
    }
    assert data["figures"]["rate"]["met"] is False and data["targets_met"] is False


def test_a_run_that_exits_is_written_and_one_that_crashes_is_not(results, record):
    with pytest.raises(SystemExit), record.Run("exits.py") as run:
        run.figure("x", 1.0, "ms", target=("<", 0.5))
        raise SystemExit(1)  # as a script does when a target is missed
    assert len(list((results / "exits").glob("*.json"))) == 1
    with pytest.raises(RuntimeError), record.Run("crashes.py") as run:
        run.figure("x", 1.0, "ms")
        raise RuntimeError("the PACS went away")
    assert not (results / "crashes").exists()


def write(folder: Path, name: str, date: str, figures: dict, **extra) -> None:
    (folder / name).mkdir(parents=True, exist_ok=True)
    data = {
        "schema": 1,
        "benchmark": name,
        "date": date,
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "dirty": False,
        "machine": {"host_id": "abcdefabcdef", "cpu_count": 2, "load_average_start": [1.0, 1, 1]},
        "figures": figures,
        "notes": [],
        **extra,
    }
    (folder / name / f"{date}.json").write_text(json.dumps(data))


def test_the_table_shows_the_newest_run_of_each_benchmark(results, report, monkeypatch):
    monkeypatch.setattr(report, "benchmarks", lambda: ["fast", "never"])
    labelled = {"value": 0.0, "unit": "ms", "label": "time to answer", "target": {"op": "<", "value": 100.0}}
    write(results, "fast", "2026-12-01T10:00:00Z", {"t": {**labelled, "value": 250.0, "met": False}})
    newer = {"t": {**labelled, "value": 42.25, "met": True}, "raw": {"value": 1, "unit": ""}}
    write(results, "fast", "2026-12-02T10:00:00Z", newer)
    lines = report.table().splitlines()
    assert lines[0] == report.START and lines[-1] == report.END
    assert lines[3] == (
        "| `fast.py` | time to answer | 42.2 ms | < 100 ms: met | 2026-12-02, `0123456`, 2 CPUs, load 1.0, "
        "host `abcdefabcdef` |"
    )
    assert lines[4] == "| `never.py` | | not yet measured | | |"
    assert len(lines) == 6  # the unlabelled figure is kept in the file, not shown


def test_the_readme_block_is_replaced_between_the_markers(results, report, monkeypatch):
    monkeypatch.setattr(report, "benchmarks", lambda: ["never"])
    text = f"# Title\n\nbefore\n{report.START}\nold table\n{report.END}\nafter\n"
    assert report.with_table(text) == (
        f"# Title\n\nbefore\n{report.START}\n| benchmark | figure | result | target | run |\n"
        f"| --- | --- | --- | --- | --- |\n| `never.py` | | not yet measured | | |\n{report.END}\nafter\n"
    )


def test_every_results_file_in_the_repository_is_in_the_current_format(report):
    for path in sorted((BENCHMARKS / "results").rglob("*.json")):
        data = json.loads(path.read_text())
        where = path.relative_to(ROOT)
        assert data.get("schema") == 1, f"{where}: not in record.py's format (schema 1)"
        assert data["benchmark"] == path.parent.name, f"{where}: benchmark {data['benchmark']!r} in the wrong folder"
        assert path.parent.name in report.benchmarks(), f"{where}: no script benchmarks/{path.parent.name}.py"
        assert {"date", "commit", "machine", "figures"} <= data.keys(), f"{where}: fields missing"
        for name, figure in data["figures"].items():
            assert {"value", "unit"} <= figure.keys(), f"{where}: figure {name} without value and unit"
