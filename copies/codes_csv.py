"""The procedure code mapping table a receiving trust uploads: parsed and validated as a whole, every
problem named with its line, nothing taken unless everything is right. No database in here.

Columns (header line first; `sender_scheme` and the meanings may be left out):

    sender_scheme, sender_code, description_pattern, nicip_code, nicip_meaning, snomed_code, snomed_meaning

A row maps either a sender's code (scheme + code, as in Procedure Code Sequence or Requested Procedure Code
Sequence) or a study description pattern (shell wildcards, `CT*HEAD*`), never both.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

COLUMNS = (
    "sender_scheme",
    "sender_code",
    "description_pattern",
    "nicip_code",
    "nicip_meaning",
    "snomed_code",
    "snomed_meaning",
)
REQUIRED = ("nicip_code", "snomed_code")
MAX_BYTES = 2 * 1024 * 1024
MAX_ROWS = 20_000
NICIP = re.compile(r"^[A-Z][A-Z0-9]{3,7}$")  # NICIP exam codes: upper-case letters and digits
SCTID = re.compile(r"^[1-9][0-9]{5,17}$")  # SNOMED CT identifiers: 6 to 18 digits, no leading zero
CODE = re.compile(r"^[^\\\x00-\x1f\x7f]{1,16}$")  # a DICOM SH code value
SCHEME = re.compile(r"^[^\\\x00-\x1f\x7f]{0,16}$")
TEXT_MAX = 64  # LO: code meanings and description patterns


@dataclass(frozen=True)
class MappingRow:
    line: int
    sender_scheme: str
    sender_code: str
    description_pattern: str
    nicip_code: str
    nicip_meaning: str
    snomed_code: str
    snomed_meaning: str

    @property
    def key(self) -> tuple[str, str, str]:
        if self.sender_code:
            return ("code", self.sender_scheme.upper(), self.sender_code)
        return ("pattern", "", self.description_pattern.casefold())


class MappingErrors(ValueError):
    """Everything wrong with an upload, one line each ("line 4: ...")."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


# Verhoeff's dihedral check digit, which every SNOMED CT identifier ends with.
_MULT = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
]
_PERM = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
]
_INV = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9]


def verhoeff_ok(digits: str) -> bool:
    check = 0
    for i, ch in enumerate(reversed(digits)):
        check = _MULT[check][_PERM[i % 8][int(ch)]]
    return check == 0


def verhoeff_digit(digits: str) -> str:
    """The check digit to append to `digits` (for making synthetic identifiers in tests and the demo)."""
    check = 0
    for i, ch in enumerate(reversed(digits)):
        check = _MULT[check][_PERM[(i + 1) % 8][int(ch)]]
    return str(_INV[check])


def snomed_concept_problem(value: str) -> str:
    """Why `value` is not a SNOMED CT concept identifier ("" when it is one)."""
    if not SCTID.match(value):
        return "is not a SNOMED CT identifier (6 to 18 digits)"
    if value[-3:-1] not in ("00", "10"):
        return "is a SNOMED CT identifier of something other than a concept (partition)"
    if not verhoeff_ok(value):
        return "fails the SNOMED CT check digit"
    return ""


def parse(data: bytes) -> list[MappingRow]:
    """Every row of the upload, or MappingErrors naming each problem with its line number."""
    if len(data) > MAX_BYTES:
        raise MappingErrors([f"The file is larger than {MAX_BYTES // 1024 // 1024} MB."])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MappingErrors([f"The file is not UTF-8 text (byte {exc.start})."]) from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        raise MappingErrors(["The file is empty: the first line must name the columns."]) from None
    except csv.Error as exc:
        raise MappingErrors([f"line 1: {exc}"]) from exc
    problems = _header_problems(header)
    if problems:
        raise MappingErrors(problems)
    rows: list[MappingRow] = []
    seen: dict[tuple[str, str, str], int] = {}
    try:
        for values in reader:
            line = reader.line_num
            if not any(v.strip() for v in values):
                continue
            if len(rows) >= MAX_ROWS:
                problems.append(f"line {line}: more than {MAX_ROWS} rows")
                break
            row, row_problems = _row(line, header, values)
            problems += row_problems
            if row is None:
                continue
            if row.key in seen:
                problems.append(f"line {line}: the same sender key as line {seen[row.key]}")
                continue
            seen[row.key] = line
            rows.append(row)
    except csv.Error as exc:
        problems.append(f"line {reader.line_num}: {exc}")
    if problems:
        raise MappingErrors(problems)
    if not rows:
        raise MappingErrors(["The file has a header but no rows."])
    return rows


def _header_problems(header: list[str]) -> list[str]:
    problems = [f"line 1: unknown column {name!r}" for name in header if name not in COLUMNS]
    problems += [f"line 1: column {name!r} appears twice" for name in sorted(set(header)) if header.count(name) > 1]
    problems += [f"line 1: the column {name!r} is missing" for name in REQUIRED if name not in header]
    if "sender_code" not in header and "description_pattern" not in header:
        problems.append("line 1: a column 'sender_code' or 'description_pattern' is needed")
    return problems


def _row(line: int, header: list[str], values: list[str]) -> tuple[MappingRow | None, list[str]]:
    if len(values) != len(header):
        return None, [f"line {line}: {len(values)} fields where the header names {len(header)}"]
    got = {name: value.strip() for name, value in zip(header, values, strict=True)}
    fields = {name: got.get(name, "") for name in COLUMNS}
    problems = []
    if bool(fields["sender_code"]) == bool(fields["description_pattern"]):
        problems.append(f"line {line}: give a sender_code or a description_pattern (one of the two)")
    if fields["sender_code"] and not CODE.match(fields["sender_code"]):
        problems.append(f"line {line}: sender_code {fields['sender_code']!r} is not a code (1 to 16 characters)")
    if not SCHEME.match(fields["sender_scheme"]):
        problems.append(f"line {line}: sender_scheme {fields['sender_scheme']!r} is longer than 16 characters")
    if not NICIP.match(fields["nicip_code"]):
        problems.append(f"line {line}: nicip_code {fields['nicip_code']!r} is not a NICIP code")
    problem = snomed_concept_problem(fields["snomed_code"])
    if problem:
        problems.append(f"line {line}: snomed_code {fields['snomed_code']!r} {problem}")
    for name in ("description_pattern", "nicip_meaning", "snomed_meaning"):
        if len(fields[name]) > TEXT_MAX or re.search(r"[\\\x00-\x1f\x7f]", fields[name]):
            problems.append(f"line {line}: {name} is longer than {TEXT_MAX} characters or has control characters")
    if problems:
        return None, problems
    return MappingRow(line=line, **fields), []
