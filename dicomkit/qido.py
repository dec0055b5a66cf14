"""QIDO-RS over an index of instances (dicomkit.webindex): query parameters, matching, and the attributes
each level returns (PS3.18 8.3.4 and 6.7; PS3.4 C.2.2.2 for matching). No Django.

Matching: single value (case-sensitive; PN case-insensitive), `*` and `?` wildcards on text values, UID
lists (comma or backslash), date, time and date-time ranges (`a-b`, `a-`, `-b`), and an empty value
matches anything (and asks for the attribute). A multi-valued attribute matches if any value does.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword

from .webindex import Entry

LEVELS = ("studies", "series", "instances")
MAX_LIMIT = 10000
_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")
_RANGE_VRS = frozenset({"DA", "TM", "DT"})
_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UR", "UT"})
_NUMBER_VRS = frozenset({"IS", "DS", "US", "UL", "SS", "SL", "FL", "FD", "UV", "SV"})

STUDY_TAGS = (
    "00080005",  # SpecificCharacterSet
    "00080020",  # StudyDate
    "00080030",  # StudyTime
    "00080050",  # AccessionNumber
    "00080056",  # InstanceAvailability
    "00080061",  # ModalitiesInStudy
    "00080090",  # ReferringPhysicianName
    "00080201",  # TimezoneOffsetFromUTC
    "00081030",  # StudyDescription
    "00081190",  # RetrieveURL
    "00100010",  # PatientName
    "00100020",  # PatientID
    "00100021",  # IssuerOfPatientID
    "00100030",  # PatientBirthDate
    "00100040",  # PatientSex
    "0020000D",  # StudyInstanceUID
    "00200010",  # StudyID
    "00201206",  # NumberOfStudyRelatedSeries
    "00201208",  # NumberOfStudyRelatedInstances
)
SERIES_TAGS = (
    "00080005",
    "00080060",  # Modality
    "00080201",
    "0008103E",  # SeriesDescription
    "00081190",
    "0020000E",  # SeriesInstanceUID
    "00200011",  # SeriesNumber
    "00201209",  # NumberOfSeriesRelatedInstances
    "00400244",  # PerformedProcedureStepStartDate
    "00400245",  # PerformedProcedureStepStartTime
    "00400275",  # RequestAttributesSequence
)
INSTANCE_TAGS = (
    "00080005",
    "00080016",  # SOPClassUID
    "00080018",  # SOPInstanceUID
    "00080056",
    "00080201",
    "00081190",
    "00200013",  # InstanceNumber
    "00280010",  # Rows
    "00280011",  # Columns
    "00280100",  # BitsAllocated
    "00280008",  # NumberOfFrames
)
# What a lower level returns of the levels above when the search is not scoped to them (PS3.18 6.7.1.2.2).
DEFAULTS = {
    "studies": STUDY_TAGS,
    "series": SERIES_TAGS + STUDY_TAGS,
    "instances": INSTANCE_TAGS + SERIES_TAGS + STUDY_TAGS,
}
COMPUTED = {"00080061", "00080062", "00201206", "00201208", "00201209", "00081190", "00080056"}


class QueryError(ValueError):
    """A query the server cannot answer as asked (the caller answers 400 with the message)."""


@dataclass
class Query:
    matches: dict[str, str] = field(default_factory=dict)
    include: set[str] = field(default_factory=set)
    include_all: bool = False
    limit: int | None = None
    offset: int = 0
    fuzzy: bool = False


def tag_of(name: str) -> str:
    """`PatientID` or `00100020` as an 8-digit tag; QueryError for anything else (nested paths included)."""
    if _TAG.match(name):
        return name.upper()
    tag = tag_for_keyword(name)
    if tag is None:
        raise QueryError(f"{name!r} is neither a DICOM keyword nor a tag (nested attributes are not supported).")
    return f"{tag:08X}"


def parse(params: Iterable[tuple[str, str]]) -> Query:
    """Query parameters as they came (repeated keys allowed) into a Query."""
    query = Query()
    for key, value in params:
        if key == "includefield":
            for name in filter(None, (v.strip() for v in value.split(","))):
                if name == "all":
                    query.include_all = True
                else:
                    query.include.add(tag_of(name))
        elif key in ("limit", "offset"):
            try:
                number = int(value)
            except ValueError:
                raise QueryError(f"{key} must be a whole number.") from None
            if number < 0:
                raise QueryError(f"{key} must not be negative.")
            if key == "limit":
                query.limit = min(number, MAX_LIMIT)
            else:
                query.offset = number
        elif key == "fuzzymatching":
            query.fuzzy = value.lower() == "true"
        else:
            query.matches[tag_of(key)] = value
    return query


def _vr(tag: str) -> str:
    try:
        return dictionary_VR(int(tag, 16))
    except KeyError:
        return "UN"


def matches(values: list[Any], pattern: str, vr: str, *, fuzzy: bool = False) -> bool:
    """One attribute's values against one query value (PS3.4 C.2.2.2)."""
    if pattern == "":
        return True
    texts = [_text(v, vr) for v in values] or [""]
    if vr == "UI":
        wanted = {p for p in re.split(r"[,\\]", pattern) if p}
        return any(t in wanted for t in texts)
    if vr in _RANGE_VRS and "-" in pattern:
        low, _, high = pattern.partition("-")
        return any(t and (not low or t[: len(low)] >= low) and (not high or t[: len(high)] <= high) for t in texts)
    if vr in _NUMBER_VRS:
        try:
            number = float(pattern)
        except ValueError:
            return False
        return any(_float(t) == number for t in texts)
    case_blind = vr == "PN" or fuzzy
    if "*" in pattern or "?" in pattern:
        regex = re.compile(fnmatch.translate(pattern), re.IGNORECASE if case_blind else 0)
        return any(regex.match(t) for t in texts)
    if case_blind:
        return any(t.lower() == pattern.lower() for t in texts)
    return any(t == pattern for t in texts)


def _text(value: Any, vr: str) -> str:
    if isinstance(value, dict):  # PN: {"Alphabetic": "FAMILY^GIVEN"}
        return str(value.get("Alphabetic", ""))
    return "" if value is None else str(value)


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


# --- levels ----------------------------------------------------------------------------------------


@dataclass
class Record:
    """One answer of a QIDO-RS search: its representative instance, the instances it stands for, and
    the DICOM JSON it returns."""

    first: Entry
    members: list[Entry]
    computed: dict[str, Any]

    def value(self, tag: str) -> list[Any]:
        if tag in self.computed:
            return (self.computed[tag] or {}).get("Value") or []
        return self.first.value(tag)

    def element(self, tag: str) -> dict[str, Any] | None:
        if tag in self.computed:
            return self.computed[tag]
        return self.first.metadata.get(tag)


def _group(entries: list[Entry], key: str) -> list[list[Entry]]:
    groups: dict[str, list[Entry]] = {}
    for entry in entries:
        groups.setdefault(getattr(entry, key), []).append(entry)
    return list(groups.values())


def records(level: str, entries: list[Entry], *, root: str, study_entries: dict[str, list[Entry]]) -> list[Record]:
    """The studies, series or instances among `entries` (in index order), with their computed attributes.
    `study_entries`: all instances of each study, for study-level counts a series search also returns."""
    if level == "studies":
        return [Record(g[0], g, _study_computed(g, root)) for g in _group(entries, "study")]
    studies = {uid: _study_computed(members, root) for uid, members in study_entries.items()}
    if level == "series":
        return [
            Record(g[0], g, {**studies[g[0].study], **_series_computed(g, root)}) for g in _group(entries, "series")
        ]
    return [Record(e, [e], {**studies[e.study], **_instance_computed(e, root)}) for e in entries]


def _element(vr: str, values: list[Any]) -> dict[str, Any]:
    return {"vr": vr, "Value": values} if values else {"vr": vr}


def _study_computed(group: list[Entry], root: str) -> dict[str, Any]:
    modalities = sorted({m for e in group for m in e.value("00080060") if m})
    classes = sorted({e.sop_class for e in group if e.sop_class})
    series = {e.series for e in group}
    return {
        "00080056": _element("CS", ["ONLINE"]),
        "00080061": _element("CS", modalities),
        "00080062": _element("UI", classes),
        "00201206": _element("IS", [len(series)]),
        "00201208": _element("IS", [len(group)]),
        "00081190": _element("UR", [f"{root}/studies/{group[0].study}"]),
    }


def _series_computed(group: list[Entry], root: str) -> dict[str, Any]:
    first = group[0]
    return {
        "00201209": _element("IS", [len(group)]),
        "00081190": _element("UR", [f"{root}/studies/{first.study}/series/{first.series}"]),
    }


def _instance_computed(entry: Entry, root: str) -> dict[str, Any]:
    url = f"{root}/studies/{entry.study}/series/{entry.series}/instances/{entry.sop}"
    return {"00201209": None, "00081190": _element("UR", [url]), "00080056": _element("CS", ["ONLINE"])}


def search(level: str, candidates: list[Record], query: Query) -> list[dict[str, Any]]:
    """Filter by the query's matches, page, and shape each answer's DICOM JSON."""
    found = [
        r
        for r in candidates
        if all(matches(r.value(t), v, _vr(t), fuzzy=query.fuzzy) for t, v in query.matches.items())
    ]
    found = found[query.offset :]
    if query.limit is not None:
        found = found[: query.limit]
    wanted = [*DEFAULTS[level], *query.matches, *sorted(query.include)]
    return [_shape(r, wanted, query.include_all, level) for r in found]


def _shape(record: Record, wanted: list[str], include_all: bool, level: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    tags = list(dict.fromkeys(wanted))
    if include_all:
        tags += [t for t in record.first.metadata if t not in out and t != "7FE00010"]
    for tag in tags:
        if tag == "00201209" and level == "studies":
            continue
        element = record.element(tag)
        if element is None:
            continue
        if "BulkDataURI" in element:
            continue  # a search answers attributes, not bulk data
        out[tag] = element
    return dict(sorted(out.items()))
