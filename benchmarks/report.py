"""The README's results table, made from the newest results file of each benchmark script.

    .venv/bin/python benchmarks/report.py           # rewrite the table in README.md (`make results`)
    .venv/bin/python benchmarks/report.py --check   # exit 1 if README.md's table is not what this makes
    .venv/bin/python benchmarks/report.py --print   # print the table

A benchmark is a script in benchmarks/ that records its runs with `record.Run(__file__, ...)`; its files are
`benchmarks/results/<script>/*.json` (see record.py). The newest by date is shown: its labelled figures,
each against its target, and the run's date, commit, CPUs and load. A script with no file yet shows one
row, "not yet measured". Nothing here is typed by hand: to change the table, run the benchmark.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from record import RESULTS, ROOT, SCHEMA  # noqa: E402

README = ROOT / "README.md"
START = "<!-- results: made by `make results` (benchmarks/report.py) from benchmarks/results/; not edited by hand -->"
END = "<!-- end of results -->"
HELPERS = {"record", "report"}
RECORDS_ITSELF = re.compile(r"\bRun\(\s*__file__")


def benchmarks() -> list[str]:
    """The scripts that record their runs, by name (the file's stem)."""
    scripts = [p for p in HERE.glob("*.py") if p.stem not in HELPERS]
    return sorted(p.stem for p in scripts if RECORDS_ITSELF.search(p.read_text()))


def runs(name: str) -> list[dict[str, Any]]:
    """Every readable results file of one benchmark, oldest first."""
    found = []
    for path in sorted((RESULTS / name).glob("*.json")):
        data = json.loads(path.read_text())
        if data.get("schema") == SCHEMA and data.get("benchmark") == name:
            found.append((data["date"], path.name, data))
    return [data for _, _, data in sorted(found, key=lambda item: (item[0], item[1]))]


def latest(name: str) -> dict[str, Any] | None:
    found = runs(name)
    return found[-1] if found else None


def number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def result(figure: dict[str, Any]) -> str:
    unit = figure["unit"]
    return number(figure["value"]) + (f" {unit}" if unit else "")


def target(figure: dict[str, Any]) -> str:
    if "target" not in figure:
        return ""
    bound = figure["target"]
    unit = f" {figure['unit']}" if figure["unit"] else ""
    verdict = "met" if figure["met"] else "**not met**"
    return f"{bound['op'].replace('<=', '≤').replace('>=', '≥')} {bound['value']:,g}{unit}: {verdict}"


def conditions(run: dict[str, Any]) -> str:
    """When, on what, at which commit: what the reader needs to weigh the figures."""
    box = run["machine"]
    parts = [run["date"][:10]]
    if run.get("commit"):
        parts.append(f"`{run['commit'][:7]}`" + (" + changes" if run.get("dirty") else ""))
    if box.get("cpu_count"):
        parts.append(f"{box['cpu_count']} CPUs")
    loads = [box.get("load_average_start"), box.get("load_average_end")]
    shown = [f"{load[0]:.1f}" for load in loads if load]
    if shown:
        parts.append("load " + "→".join(dict.fromkeys(shown)))
    parts.append(f"host `{box['host_id']}`" if box.get("host_id") else "host unknown")
    return ", ".join(parts) + "".join(f"; {note}" for note in run.get("notes", []))


def rows() -> list[str]:
    lines = []
    for name in benchmarks():
        run = latest(name)
        shown = [f for f in (run or {}).get("figures", {}).values() if f.get("label")]
        if not run or not shown:
            lines.append(f"| `{name}.py` | | not yet measured | | |")
            continue
        for n, figure in enumerate(shown):
            first = n == 0
            cells = [f"`{name}.py`" if first else "", figure["label"], result(figure), target(figure)]
            lines.append("| " + " | ".join([*cells, conditions(run) if first else ""]) + " |")
    return lines


def table() -> str:
    head = ["| benchmark | figure | result | target | run |", "| --- | --- | --- | --- | --- |"]
    return "\n".join([START, *head, *rows(), END])


def with_table(text: str) -> str:
    """README text with the block between the markers replaced by the table as it is now."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"README.md has no results markers; put these two lines where the table goes:\n{START}\n{END}")
    return text[:start] + table() + text[end + len(END) :]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md's table is out of date")
    parser.add_argument("--print", action="store_true", help="print the table, change nothing")
    args = parser.parse_args()
    if args.print:
        print(table())
        return 0
    text = README.read_text()
    made = with_table(text)
    if args.check:
        if made != text:
            print("README.md's results table is out of date: run `make results`.", file=sys.stderr)
            return 1
        return 0
    if made != text:
        README.write_text(made)
        print("README.md: results table rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
