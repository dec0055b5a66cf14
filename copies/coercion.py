"""Coercion on arrival, per receiving trust (the engine's stage at order 10, before reconciliation):
procedure codes mapped to the trust's NICIP + SNOMED CT table, and private elements handled as the sharing
agreement says. The DICOM work is dicomkit.coercion's; here are the rules each transfer runs under, the
mapping table's upload and edits, and the list of arrivals no row mapped.

UIDs never change, and the ledger records the hash of the bytes actually sent.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from pydicom import dcmread
from pydicom.dataset import Dataset

from accounts import permissions as perms
from dicomkit import GatewayClient, RetrievedInstance
from dicomkit import coercion as dc
from dicomkit.identity import text
from directory.models import SharingAgreement, Trust
from transfers.engine import ledger
from transfers.models import Transfer

from . import codes_csv
from .models import ProcedureMapping, UnmappedProcedure

MAX_UPLOAD = codes_csv.MAX_BYTES
RULES_SECONDS = 60.0  # a pass re-reads the rules at most this often (a table edited mid-transfer applies soon)


@dataclass
class Rules:
    """What coercion does for one transfer's destination."""

    by_code: dict[tuple[str, str], dc.ProcedureMapping]
    patterns: list[tuple[str, dc.ProcedureMapping]]
    policy: dc.PrivatePolicy
    allow: frozenset[str]
    loaded: float = field(default_factory=time.monotonic)
    decided: dict[str, tuple[dc.ProcedureMapping | None, dc.Code | None]] = field(default_factory=dict)

    @property
    def has_table(self) -> bool:
        return bool(self.by_code or self.patterns)

    @property
    def active(self) -> bool:
        return self.has_table or self.policy != dc.PrivatePolicy.KEEP


def _mapping(row: ProcedureMapping) -> dc.ProcedureMapping:
    return dc.ProcedureMapping(
        nicip=dc.Code(row.nicip_code, dc.NICIP_SCHEME, row.nicip_meaning),
        snomed=dc.Code(row.snomed_code, dc.SNOMED_SCHEME, row.snomed_meaning),
    )


def rules_for_trust(trust_id: int, source_id: int) -> Rules:
    by_code: dict[tuple[str, str], dc.ProcedureMapping] = {}
    patterns: list[tuple[str, dc.ProcedureMapping]] = []
    for row in ProcedureMapping.objects.filter(trust_id=trust_id):
        if row.sender_code:
            by_code[(row.sender_scheme.upper(), row.sender_code)] = _mapping(row)
        else:
            patterns.append((row.description_pattern, _mapping(row)))
    agreement = SharingAgreement.between(source_id, trust_id)
    policy = dc.PrivatePolicy(agreement.private_elements) if agreement else dc.PrivatePolicy.KEEP
    allow = frozenset(agreement.private_creators_kept or []) if agreement else frozenset()
    return Rules(by_code, sorted(patterns, key=lambda p: (-len(p[0]), p[0])), policy, allow)


_rules: dict[int, Rules] = {}


def rules_for(transfer: Transfer) -> Rules:
    rules = _rules.get(transfer.pk)
    if rules is None or time.monotonic() - rules.loaded > RULES_SECONDS:
        if len(_rules) > 256:
            _rules.clear()
        rules = _rules[transfer.pk] = rules_for_trust(transfer.destination_id, transfer.source_id)
    return rules


def lookup(rules: Rules, ds: Dataset) -> tuple[dc.ProcedureMapping | None, dc.Code | None]:
    """The row for the sender's procedure: a code (scheme and code; a row without a scheme matches any),
    else the longest description pattern that matches. Returns (mapping, the sender's code)."""
    codes = dc.sender_codes(ds)
    for code in codes:
        mapping = rules.by_code.get((code.scheme.upper(), code.value)) or rules.by_code.get(("", code.value))
        if mapping is not None:
            return mapping, code
    description = text(ds, "StudyDescription")
    for pattern, mapping in rules.patterns:
        if description and dc.description_matches(pattern, description):
            return mapping, codes[0] if codes else None
    return None, codes[0] if codes else None


def coerce_dataset(ds: Dataset, rules: Rules, study_uid: str, *, on_unmapped: Any = None) -> bool:
    """Apply the rules to one dataset in memory; True when it changed."""
    before = (text(ds, "StudyInstanceUID"), text(ds, "SeriesInstanceUID"), text(ds, "SOPInstanceUID"))
    changed = False
    if rules.has_table:
        if study_uid not in rules.decided:
            rules.decided[study_uid] = lookup(rules, ds)
            if rules.decided[study_uid][0] is None and on_unmapped is not None:
                on_unmapped(ds, rules.decided[study_uid][1])
        mapping, original = rules.decided[study_uid]
        if mapping is not None:
            changed = dc.apply_procedure_mapping(ds, mapping, original)
    removed, converted = dc.apply_private_policy(ds, rules.policy, rules.allow)
    changed = changed or bool(removed or converted)
    after = (text(ds, "StudyInstanceUID"), text(ds, "SeriesInstanceUID"), text(ds, "SOPInstanceUID"))
    if before != after:  # never: the rules touch no UID; a guard for the next rule someone adds
        raise AssertionError("coercion changed a UID")
    return changed


def save_atomic(ds: Dataset, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".coerce-", suffix=".dcm")
    try:
        with os.fdopen(fd, "wb") as fh:
            ds.save_as(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def coerce_batch(transfer: Transfer, batch: list[RetrievedInstance]) -> list[RetrievedInstance]:
    """The stage: coerce each file of the batch in place; the ledger gets the hash of what will be sent."""
    rules = rules_for(transfer)
    if not rules.active or not batch:
        return batch
    changed: dict[str, Path] = {}

    def unmapped(ds: Dataset, code: dc.Code | None) -> None:
        note_unmapped(transfer.destination_id, transfer.source_id, ds, code)

    for item in batch:
        ds = dcmread(item.path)
        if coerce_dataset(ds, rules, item.study_instance_uid, on_unmapped=unmapped):
            save_atomic(ds, item.path)
            changed[item.sop_instance_uid] = item.path
    ledger.record_sent_bytes(transfer, changed)
    return batch


def note_unmapped(trust_id: int, source_id: int, ds: Dataset, code: dc.Code | None) -> None:
    """A study whose procedure no row maps: listed for the trust's imaging managers to map."""
    key = {
        "trust_id": trust_id,
        "source_id": source_id,
        "sender_scheme": (code.scheme if code else "")[:16],
        "sender_code": (code.value if code else "")[:16],
        "study_description": text(ds, "StudyDescription")[:64] if code is None else "",
    }
    meaning = (code.meaning if code else "")[:64]
    updated = UnmappedProcedure.objects.filter(**key).update(studies=F("studies") + 1)
    if not updated:
        try:
            with transaction.atomic():
                UnmappedProcedure.objects.create(**key, sender_meaning=meaning)
        except IntegrityError:
            UnmappedProcedure.objects.filter(**key).update(studies=F("studies") + 1)


class ArrivalCoercion:
    """The engine's stage (transfers.stages, order 10)."""

    def prepare_batch(
        self, transfer: Transfer, destination: GatewayClient, batch: list[RetrievedInstance]
    ) -> list[RetrievedInstance]:
        return coerce_batch(transfer, batch)

    def holds_back(self, transfer: Transfer, owner: str) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ArrivalCoercion)

    def __hash__(self) -> int:
        return hash(ArrivalCoercion)


# --- the mapping table -----------------------------------------------------------------------------


def _require_manager(user: Any, trust: Trust) -> None:
    if not perms.has_perm_at(user, perms.Perm.CHANGE_RECONCILIATION_SETTINGS, trust.pk):
        raise PermissionDenied(f"Only imaging managers of {trust.ods_code} may change its procedure code mapping.")


def _clear_unmapped(trust: Trust, rows: list[codes_csv.MappingRow]) -> None:
    for row in rows:
        if row.sender_code:
            found = UnmappedProcedure.objects.filter(trust=trust, sender_code=row.sender_code)
            if row.sender_scheme:
                found = found.filter(sender_scheme__iexact=row.sender_scheme)
            found.delete()
        else:
            for item in UnmappedProcedure.objects.filter(trust=trust, sender_code=""):
                if dc.description_matches(row.description_pattern, item.study_description):
                    item.delete()


def _fields(row: codes_csv.MappingRow) -> dict[str, str]:
    return {
        "sender_scheme": row.sender_scheme,
        "sender_code": row.sender_code,
        "description_pattern": row.description_pattern,
        "nicip_code": row.nicip_code,
        "nicip_meaning": row.nicip_meaning,
        "snomed_code": row.snomed_code,
        "snomed_meaning": row.snomed_meaning,
    }


@transaction.atomic
def mappings_upload(*, user: Any, trust: Trust, data: bytes) -> int:
    """Replace the trust's table with an uploaded CSV: all of it, or (any problem, with its line) none."""
    _require_manager(user, trust)
    try:
        rows = codes_csv.parse(data)
    except codes_csv.MappingErrors as exc:
        raise ValidationError({"file": exc.problems}) from exc
    ProcedureMapping.objects.filter(trust=trust).delete()
    ProcedureMapping.objects.bulk_create([ProcedureMapping(trust=trust, **_fields(row)) for row in rows])
    _clear_unmapped(trust, rows)
    return len(rows)


@transaction.atomic
def mapping_save(
    *, user: Any, trust: Trust, values: dict[str, str], mapping: ProcedureMapping | None = None
) -> ProcedureMapping:
    """Add one row, or change one, validated as an uploaded line is."""
    _require_manager(user, trust)
    header = list(codes_csv.COLUMNS)
    row, problems = codes_csv._row(1, header, [str(values.get(name, "") or "") for name in header])
    if row is None:
        raise ValidationError({"detail": [p.removeprefix("line 1: ") for p in problems]})
    clash = ProcedureMapping.objects.filter(
        trust=trust,
        sender_scheme__iexact=row.sender_scheme,
        sender_code=row.sender_code,
        description_pattern__iexact=row.description_pattern,
    )
    if mapping is not None:
        clash = clash.exclude(pk=mapping.pk)
    if clash.exists():
        raise ValidationError({"detail": ["Another row has the same sender code or description pattern."]})
    mapping = mapping or ProcedureMapping(trust=trust)
    for name, value in _fields(row).items():
        setattr(mapping, name, value)
    mapping.save()
    _clear_unmapped(trust, [row])
    return mapping


@transaction.atomic
def mapping_delete(*, user: Any, mapping: ProcedureMapping) -> None:
    _require_manager(user, mapping.trust)
    mapping.delete()


def mappings_csv(trust: Trust) -> str:
    """The trust's table as CSV, in the upload's own format (download, edit, upload again)."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(codes_csv.COLUMNS)
    for row in ProcedureMapping.objects.filter(trust=trust):
        writer.writerow([getattr(row, name) for name in codes_csv.COLUMNS])
    return out.getvalue()
