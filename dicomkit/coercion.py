"""Coercion of a DICOM dataset on arrival at a receiving trust: procedure codes to the trust's common codes
(NICIP with SNOMED CT), private elements kept, removed or removed except named private creators, and known
private attributes copied to their standard equivalents first. No Django in here.

UIDs never change: nothing here touches Study, Series or SOP Instance UIDs.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, MutableSequence
from dataclasses import dataclass
from enum import StrEnum

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

NICIP_SCHEME = "NICIP"
SNOMED_SCHEME = "SCT"


@dataclass(frozen=True)
class Code:
    value: str
    scheme: str
    meaning: str = ""

    def item(self) -> Dataset:
        ds = Dataset()
        ds.CodeValue = self.value
        ds.CodingSchemeDesignator = self.scheme
        ds.CodeMeaning = self.meaning or self.value
        return ds


@dataclass(frozen=True)
class ProcedureMapping:
    """The receiving trust's common code for a sender's procedure: NICIP, with its SNOMED CT concept."""

    nicip: Code
    snomed: Code


def sender_codes(ds: Dataset) -> list[Code]:
    """The sender's procedure codes: Procedure Code Sequence first, then Requested Procedure Code Sequence."""
    found: list[Code] = []
    for keyword in ("ProcedureCodeSequence", "RequestedProcedureCodeSequence"):
        for item in ds.get(keyword, None) or []:
            value = str(item.get("CodeValue", "") or "").strip()
            scheme = str(item.get("CodingSchemeDesignator", "") or "").strip()
            if value and Code(value, scheme) not in [Code(c.value, c.scheme) for c in found]:
                found.append(Code(value, scheme, str(item.get("CodeMeaning", "") or "")))
    return found


def description_matches(pattern: str, description: str) -> bool:
    """A study description pattern: shell-style wildcards (`CT*HEAD*`), case-insensitive. Not a regular
    expression on purpose: a pattern uploaded by a trust must not be able to take a worker's CPU."""
    return fnmatch.fnmatchcase(description.casefold(), pattern.casefold())


def apply_procedure_mapping(ds: Dataset, mapping: ProcedureMapping, original: Code | None) -> bool:
    """The Procedure Code Sequence becomes the NICIP code, with the SNOMED CT concept (and the sender's own
    code, when there was one) as its equivalents. Already coerced: left as it is (False)."""
    current = sender_codes(ds)
    if current and current[0].value == mapping.nicip.value and current[0].scheme == NICIP_SCHEME:
        return False
    item = mapping.nicip.item()
    equivalents = [mapping.snomed.item()]
    if original is not None:
        equivalents.append(original.item())
    item.EquivalentCodeSequence = Sequence(equivalents)
    ds.ProcedureCodeSequence = Sequence([item])
    return True


# --- private elements ------------------------------------------------------------------------------


class PrivatePolicy(StrEnum):
    KEEP = "keep"
    REMOVE = "remove"
    ALLOW_LIST = "allow_list"  # remove, except the blocks of named private creators


def private_creators(ds: Dataset) -> set[str]:
    """Every private creator named in the dataset, nested ones included."""
    found: set[str] = set()

    def visit(d: Dataset) -> None:
        for elem in d:
            if elem.tag.is_private and elem.tag.is_private_creator and elem.value:
                found.add(str(elem.value).strip())
            if elem.VR == "SQ":
                for item in elem.value or []:
                    visit(item)

    visit(ds)
    return found


def remove_private(ds: Dataset, keep_creators: frozenset[str] = frozenset()) -> int:
    """Remove private elements, at every depth, except the blocks reserved by a creator in `keep_creators`
    (matched exactly, as the creator string is written). Returns how many were removed."""
    removed = 0
    kept = {creator.strip() for creator in keep_creators}

    def visit(d: Dataset) -> None:
        nonlocal removed
        blocks: dict[tuple[int, int], str] = {}
        for elem in d:
            if elem.tag.is_private and elem.tag.is_private_creator:
                blocks[(elem.tag.group, elem.tag.element & 0xFF)] = str(elem.value or "").strip()
        doomed = []
        for elem in d:
            if elem.tag.is_private:
                if elem.tag.is_private_creator:
                    creator = blocks.get((elem.tag.group, elem.tag.element & 0xFF), "")
                elif elem.tag.element >= 0x1000:
                    creator = blocks.get((elem.tag.group, elem.tag.element >> 8), "")
                else:
                    creator = ""
                if creator not in kept or not creator:
                    doomed.append(elem.tag)
                    continue
            if elem.VR == "SQ":
                for item in elem.value or []:
                    visit(item)
        for tag in doomed:
            del d[tag]
        removed += len(doomed)

    visit(ds)
    return removed


@dataclass(frozen=True)
class PrivateConversion:
    """A known private attribute and its standard equivalent: copied over (when the standard one is absent)
    before private elements are removed, so the information crosses the boundary in a form every PACS reads."""

    name: str
    group: int
    creator: str
    offset: int  # the element's low byte within its creator's block
    keyword: str  # the standard attribute
    convert: Callable[[object], object]


def _first_number(value: object) -> float:
    """A number from a private element's value: the first of several, text (IS/DS) or binary-free."""
    if isinstance(value, bytes):
        value = value.decode("ascii").strip("\x00 ").split("\\")[0]
    elif isinstance(value, MutableSequence | tuple):
        value = value[0]
    return float(value)  # type: ignore[arg-type]


# Two known examples (read by dcm2niix and others): the diffusion b-value as Siemens and Philips MR write it
# privately, and the standard Diffusion b-value (0018,9087) they stand for.
CONVERSIONS: tuple[PrivateConversion, ...] = (
    PrivateConversion("Siemens diffusion b-value", 0x0019, "SIEMENS MR HEADER", 0x0C, "DiffusionBValue", _first_number),
    PrivateConversion(
        "Philips diffusion b-factor", 0x2001, "Philips MR Imaging DD 001", 0x03, "DiffusionBValue", _first_number
    ),
)


def convert_private(ds: Dataset, conversions: tuple[PrivateConversion, ...] = CONVERSIONS) -> list[str]:
    """Copy each known private attribute present to its standard equivalent, unless that is already set.
    A value that does not convert is left alone (the private one is then removed or kept as the policy says).
    Returns the names of the conversions made."""
    made: list[str] = []
    for conversion in conversions:
        if conversion.keyword in ds:
            continue
        try:
            block = ds.private_block(conversion.group, conversion.creator)
            value = block[conversion.offset].value
        except KeyError:
            continue
        try:
            setattr(ds, conversion.keyword, conversion.convert(value))
        except (TypeError, ValueError, IndexError, UnicodeDecodeError):
            continue
        made.append(conversion.name)
    return made


def apply_private_policy(
    ds: Dataset, policy: PrivatePolicy, allow: frozenset[str] = frozenset()
) -> tuple[int, list[str]]:
    """The agreement's policy: keep (nothing changes), remove, or remove except `allow`. Known private
    attributes are converted first. Returns (elements removed, conversions made)."""
    if policy == PrivatePolicy.KEEP:
        return 0, []
    made = convert_private(ds)
    return remove_private(ds, allow if policy == PrivatePolicy.ALLOW_LIST else frozenset()), made
