"""The README stays true to the code: every setting and every pinned package has a row, the results table
is what benchmarks/report.py makes from benchmarks/results/, links resolve, and it stays short.

The configuration and dependency tables are read by their section headings ("## Configuration",
"## Dependencies"); a row names its variables or packages in backticks in its first cell. Other branches
add settings and packages: a failure says exactly which row to add or remove.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SETTINGS = ROOT / "portal" / "settings.py"
REQUIREMENTS = (ROOT / "requirements.txt", ROOT / "requirements-dev.txt")
PACKAGE_JSON = ROOT / "package.json"
PROCESS_LAYOUTS = ("Procfile", "Procfile.demo", "docker-compose.yml")
MAX_LINES = 200
# A pinned line: name, optional extras, `==` version.
PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*==")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# A path to a Markdown file written as text (`docs/ui.md`, audit/README.md): at least one folder.
MD_PATH = re.compile(r"(?<![\w./:-])((?:\.\./|[\w.-]+/)+[\w.-]+\.md)(?![\w/])")


def table_under(heading: str) -> list[tuple[int, list[str]]]:
    """(line number, cells) of each body row of the first table under the `## heading...` section."""
    lines = README.read_text().splitlines()
    starts = [n for n, line in enumerate(lines) if line.startswith("## ") and line[3:].startswith(heading)]
    assert starts, f'README.md has no section "## {heading}…": the test reads that table from under it'
    rows: list[tuple[int, list[str]]] = []
    for n in range(starts[0] + 1, len(lines)):
        line = lines[n]
        if line.startswith("## "):
            break
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            rows.append((n + 1, cells))
        elif rows:
            break
    assert len(rows) > 2, f'README.md has no table under "## {heading}"'
    return rows[2:]  # the header and the --- line


def named_in_first_cells(heading: str) -> dict[str, int]:
    """Everything in backticks in the first cell of each row: name → README line number."""
    return {name: n for n, cells in table_under(heading) for name in re.findall(r"`([^`]+)`", cells[0])}


def settings_reads() -> dict[str, int]:
    """Every environment variable portal/settings.py reads through django-environ: name → line number."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(SETTINGS.read_text())):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        by_env = (isinstance(func, ast.Name) and func.id == "env") or (
            isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "env"
        )
        first = node.args[0]
        if by_env and isinstance(first, ast.Constant) and isinstance(first.value, str):
            found.setdefault(first.value, node.lineno)
    return found


def normalized(name: str) -> str:
    """PEP 503 names (npm names are already lower case), extras dropped."""
    return re.sub(r"[-_.]+", "-", name.split("[", 1)[0]).lower()


def pinned() -> dict[str, str]:
    """Every package pinned: normalized name → where (file and the name as written there)."""
    found: dict[str, str] = {}
    for path in REQUIREMENTS:
        for line in path.read_text().splitlines():
            match = PIN.match(line.split("#", 1)[0])
            if match:
                found[normalized(match.group(1))] = f"{path.name}: {match.group(1)}"
    package = json.loads(PACKAGE_JSON.read_text())
    for key in ("dependencies", "devDependencies", "prebuilt"):
        for name in package.get(key, {}):
            found[normalized(name)] = f"package.json {key}: {name}"
    return found


def test_the_configuration_table_names_every_variable_settings_reads():
    rows = named_in_first_cells("Configuration")
    missing = {name: line for name, line in settings_reads().items() if name not in rows}
    assert not missing, "\n".join(
        f"README.md's configuration table has no row naming `{name}` (portal/settings.py line {line} reads it). "
        f"Add one under ## Configuration:\n| `{name}` | <default> | <what it does> |"
        for name, line in sorted(missing.items())
    )


def test_the_configuration_table_names_nothing_the_portal_does_not_read():
    # The process layouts read a few variables of their own (the demo's web port in Procfile.demo).
    layouts = " ".join((ROOT / name).read_text() for name in PROCESS_LAYOUTS)
    reads = settings_reads()
    stale = {
        name: line
        for name, line in named_in_first_cells("Configuration").items()
        if name not in reads and not re.search(rf"\b{re.escape(name)}\b", layouts)
    }
    assert not stale, "\n".join(
        f"README.md line {line} names `{name}` in the configuration table, but neither portal/settings.py nor "
        f"{', '.join(PROCESS_LAYOUTS)} reads it: remove it from that row (or the row)"
        for name, line in sorted(stale.items())
    )


def test_the_dependency_table_names_every_pinned_package():
    rows = {normalized(name) for name in named_in_first_cells("Dependencies")}
    missing = {name: where for name, where in pinned().items() if name not in rows}
    assert not missing, "\n".join(
        f"README.md's dependency table has no row naming `{where.rsplit(': ', 1)[1]}` (pinned in {where}). "
        f"Add one under ## Dependencies:\n| `{where.rsplit(': ', 1)[1]}` | <why it is there> |"
        for _, where in sorted(missing.items())
    )


def test_the_dependency_table_names_only_pinned_packages():
    pins = pinned()
    stale = {name: line for name, line in named_in_first_cells("Dependencies").items() if normalized(name) not in pins}
    assert not stale, "\n".join(
        f"README.md line {line} names `{name}` in the dependency table, but nothing pins it "
        "(requirements.txt, requirements-dev.txt, package.json): remove it"
        for name, line in sorted(stale.items())
    )


def load_report():
    spec = importlib.util.spec_from_file_location("benchmarks_report", ROOT / "benchmarks" / "report.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_results_table_is_what_report_makes_from_the_results_files():
    report = load_report()
    text = README.read_text()
    assert text.count(report.START) == 1 and text.count(report.END) == 1, (
        f"README.md must hold the results markers once each:\n{report.START}\n{report.END}"
    )
    shown = text[text.index(report.START) : text.index(report.END) + len(report.END)]
    made = report.table()
    assert shown == made, (
        "README.md's results table is not what benchmarks/report.py makes from benchmarks/results/: "
        f"run `make results` (never edit the table by hand).\nREADME has:\n{shown}\nreport.py makes:\n{made}"
    )


def markdown_files() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def test_relative_links_in_the_readme_and_docs_resolve():
    broken = []
    for path in markdown_files():
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            for target in LINK.findall(line):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                    continue  # a URL or an anchor in the same page
                if not (path.parent / target.split("#", 1)[0]).exists():
                    broken.append(f"{path.relative_to(ROOT)}:{number}: link to {target} (no such file)")
            for target in MD_PATH.findall(LINK.sub("", line)):
                if not any((base / target).exists() for base in (ROOT, path.parent)):
                    broken.append(f"{path.relative_to(ROOT)}:{number}: names {target} (no such file)")
    assert not broken, "\n".join(broken)


def test_the_readme_stays_short():
    lines = len(README.read_text().splitlines())
    assert lines <= MAX_LINES, (
        f"README.md has {lines} lines (at most {MAX_LINES}): move designs and measurements to docs/<topic>.md"
    )
