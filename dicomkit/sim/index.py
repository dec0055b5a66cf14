"""SQLite index of the simulated PACS's folder, so C-FIND stays fast with thousands of studies.

Matching follows PS3.4 C.2.2.2: single value, wildcards `*` and `?`, UID lists, date ranges,
universal matching for empty keys. Person names match case-insensitively, as most PACS do.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from ..dedupe import Seen
from ..identity import OTHER_PATIENT_IDS, other_patient_ids, person_name, text, values
from ..spool import TEMP_PREFIX, sha256_of

SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (
    study_instance_uid TEXT PRIMARY KEY, patient_name TEXT, patient_id TEXT, issuer_of_patient_id TEXT,
    birth_date TEXT, sex TEXT, study_date TEXT, study_time TEXT, accession_number TEXT,
    description TEXT, study_id TEXT, charset TEXT);
CREATE TABLE IF NOT EXISTS other_ids (study_instance_uid TEXT, patient_id TEXT, issuer TEXT,
    PRIMARY KEY (study_instance_uid, patient_id, issuer));
CREATE TABLE IF NOT EXISTS series (series_instance_uid TEXT PRIMARY KEY, study_instance_uid TEXT,
    modality TEXT, series_number INTEGER, description TEXT);
CREATE TABLE IF NOT EXISTS instances (sop_instance_uid TEXT PRIMARY KEY, sop_class_uid TEXT,
    series_instance_uid TEXT, study_instance_uid TEXT, instance_number INTEGER, transfer_syntax TEXT,
    path TEXT UNIQUE, size INTEGER, mtime_ns INTEGER, sha256 TEXT, indexed_at TEXT DEFAULT CURRENT_TIMESTAMP);
CREATE INDEX IF NOT EXISTS studies_patient_id ON studies(patient_id);
CREATE INDEX IF NOT EXISTS studies_date ON studies(study_date);
CREATE INDEX IF NOT EXISTS studies_name ON studies(patient_name COLLATE NOCASE);
CREATE INDEX IF NOT EXISTS other_ids_pid ON other_ids(patient_id);
CREATE INDEX IF NOT EXISTS series_study ON series(study_instance_uid);
CREATE INDEX IF NOT EXISTS instances_series ON instances(series_instance_uid);
CREATE INDEX IF NOT EXISTS instances_study ON instances(study_instance_uid);
"""

STUDY_COLUMNS = {
    "StudyInstanceUID": ("st.study_instance_uid", "uid"),
    "PatientName": ("st.patient_name", "pn"),
    "PatientID": ("st.patient_id", "text"),
    "IssuerOfPatientID": ("st.issuer_of_patient_id", "text"),
    "PatientBirthDate": ("st.birth_date", "date"),
    "PatientSex": ("st.sex", "text"),
    "StudyDate": ("st.study_date", "date"),
    "StudyTime": ("st.study_time", "text"),
    "AccessionNumber": ("st.accession_number", "text"),
    "StudyDescription": ("st.description", "text"),
    "StudyID": ("st.study_id", "text"),
}
SERIES_COLUMNS = {
    "SeriesInstanceUID": ("se.series_instance_uid", "uid"),
    "Modality": ("se.modality", "text"),
    "SeriesNumber": ("se.series_number", "int"),
    "SeriesDescription": ("se.description", "text"),
}
IMAGE_COLUMNS = {
    "SOPInstanceUID": ("i.sop_instance_uid", "uid"),
    "SOPClassUID": ("i.sop_class_uid", "uid"),
    "InstanceNumber": ("i.instance_number", "int"),
}
LEVELS = {"STUDY", "SERIES", "IMAGE"}


@dataclass(frozen=True)
class StoredInstance:
    path: Path
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax: str


class QueryError(ValueError):
    """The identifier cannot be matched (bad level, missing unique key)."""


def _glob(value: str) -> str:
    return value.replace("[", "[[]")


def _condition(column: str, kind: str, value: str) -> tuple[str, list[Any]]:
    if kind == "uid":
        uids = [v for v in value.split("\\") if v]
        return f"{column} IN ({','.join('?' * len(uids))})", uids
    if kind == "date" and "-" in value:
        start, _, end = value.partition("-")
        parts, args = [], []
        if start:
            parts.append(f"{column} >= ?")
            args.append(start)
        if end:
            parts.append(f"{column} <= ?")
            args.append(end)
        return " AND ".join(parts) or "1", args
    if kind == "int":
        return f"{column} = ?", [int(float(value))]
    if kind == "pn":
        return f"upper({column}) GLOB upper(?)", [_glob(value)]
    if "*" in value or "?" in value:
        return f"{column} GLOB ?", [_glob(value)]
    return f"{column} = ?", [value]


class SimIndex:
    def __init__(self, storage: Path) -> None:
        self.storage = Path(storage)
        self.storage.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.storage / "index.sqlite", check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- indexing --------------------------------------------------------------------------------

    def scan(self) -> int:
        """Index files added to the folder since the last scan; drop rows whose file has gone."""
        with self._lock:
            known = {row["path"]: row["mtime_ns"] for row in self._db.execute("SELECT path, mtime_ns FROM instances")}
        added = 0
        present: set[str] = set()
        for path in self._files():
            present.add(str(path))
            if known.get(str(path)) == path.stat().st_mtime_ns:
                continue
            try:
                self.add_file(path)
                added += 1
            except Exception:  # noqa: BLE001, S112 - not DICOM (or unreadable): not part of the archive
                continue
        with self._lock:
            for gone in set(known) - present:
                self._db.execute("DELETE FROM instances WHERE path = ?", (gone,))
        return added

    def _files(self) -> Iterator[Path]:
        for root, dirs, files in os.walk(self.storage):
            dirs[:] = [d for d in dirs if d != "quarantine" and not d.startswith(".")]
            for name in files:
                if name.startswith((TEMP_PREFIX, "index.sqlite")) or name.endswith(".json"):
                    continue
                yield Path(root) / name

    def add_file(self, path: Path, sha256: str | None = None) -> None:
        ds = dcmread(path, stop_before_pixels=True)
        stat = path.stat()
        study = text(ds, "StudyInstanceUID")
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO studies VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        study,
                        person_name(ds),
                        text(ds, "PatientID"),
                        text(ds, "IssuerOfPatientID"),
                        text(ds, "PatientBirthDate"),
                        text(ds, "PatientSex"),
                        text(ds, "StudyDate"),
                        text(ds, "StudyTime"),
                        text(ds, "AccessionNumber"),
                        text(ds, "StudyDescription"),
                        text(ds, "StudyID"),
                        "\\".join(values(ds, "SpecificCharacterSet")),
                    ),
                )
                for other in other_patient_ids(ds):
                    self._db.execute(
                        "INSERT OR IGNORE INTO other_ids VALUES (?,?,?)", (study, other.patient_id, other.issuer)
                    )
                self._db.execute(
                    "INSERT OR REPLACE INTO series VALUES (?,?,?,?,?)",
                    (
                        text(ds, "SeriesInstanceUID"),
                        study,
                        text(ds, "Modality"),
                        int(ds.get("SeriesNumber", 0) or 0),
                        text(ds, "SeriesDescription"),
                    ),
                )
                self._db.execute(
                    "INSERT OR REPLACE INTO instances (sop_instance_uid, sop_class_uid, series_instance_uid,"
                    " study_instance_uid, instance_number, transfer_syntax, path, size, mtime_ns, sha256)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        text(ds, "SOPInstanceUID"),
                        text(ds, "SOPClassUID"),
                        text(ds, "SeriesInstanceUID"),
                        study,
                        int(ds.get("InstanceNumber", 0) or 0),
                        str(ds.file_meta.TransferSyntaxUID),
                        str(path),
                        stat.st_size,
                        stat.st_mtime_ns,
                        sha256,
                    ),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # --- the ReceivedIndex protocol, so C-STORE into the PACS is idempotent --------------------

    def lookup(self, sop_instance_uid: str) -> Seen | None:
        with self._lock:
            row = self._db.execute(
                "SELECT path, sha256, indexed_at FROM instances WHERE sop_instance_uid = ?", (sop_instance_uid,)
            ).fetchone()
        if row is None or not Path(row["path"]).exists():
            return None
        sha = row["sha256"] or sha256_of(Path(row["path"]))
        return Seen(sha, row["path"], row["indexed_at"])

    def record(self, sop_instance_uid: str, sha256: str, size: int, path: Path) -> None:
        self.add_file(path, sha256)

    # --- queries ---------------------------------------------------------------------------------

    def _where(self, identifier: Dataset, level: str) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        columns = dict(STUDY_COLUMNS)
        if level in ("SERIES", "IMAGE"):
            columns |= SERIES_COLUMNS
        if level == "IMAGE":
            columns |= IMAGE_COLUMNS
        for keyword, (column, kind) in columns.items():
            value = "\\".join(values(identifier, keyword)) if kind == "uid" else text(identifier, keyword)
            if keyword == "PatientName":
                value = person_name(identifier)
            if value and value != "*":
                clause, more = _condition(column, kind, value)
                clauses.append(clause)
                args += more
        modalities = [m for v in values(identifier, "ModalitiesInStudy") for m in v.split("\\") if m]
        if modalities:
            clauses.append(
                "EXISTS (SELECT 1 FROM series m WHERE m.study_instance_uid = st.study_instance_uid"  # noqa: S608 - only placeholders are interpolated
                f" AND m.modality IN ({','.join('?' * len(modalities))}))"
            )
            args += modalities
        for other_id, issuer in self._other_id_keys(identifier):
            clause, more = _condition("o.patient_id", "text", other_id)
            issuer_clause = " AND o.issuer = ?" if issuer else ""
            clauses.append(
                f"EXISTS (SELECT 1 FROM other_ids o WHERE o.study_instance_uid = st.study_instance_uid AND {clause}"  # noqa: S608 - only placeholders are interpolated
                f"{issuer_clause})"
            )
            args += more + ([issuer] if issuer else [])
        return (" AND ".join(clauses) or "1"), args

    @staticmethod
    def _other_id_keys(identifier: Dataset) -> list[tuple[str, str]]:
        keys = [(v, "") for v in values(identifier, OTHER_PATIENT_IDS) if v and v != "*"]
        for item in identifier.get("OtherPatientIDsSequence", None) or []:
            if text(item, "PatientID"):
                keys.append((text(item, "PatientID"), text(item, "IssuerOfPatientID")))
        return keys

    def find(self, identifier: Dataset) -> Iterator[Dataset]:
        level = text(identifier, "QueryRetrieveLevel").upper()
        if level not in LEVELS:
            raise QueryError(f"unsupported Query/Retrieve Level {level!r}")
        where, args = self._where(identifier, level)
        if level == "STUDY":
            sql = f"SELECT st.* FROM studies st WHERE {where} ORDER BY st.study_date DESC"  # noqa: S608
        elif level == "SERIES":
            sql = (
                "SELECT st.*, se.series_instance_uid, se.modality, se.series_number, se.description AS se_desc"  # noqa: S608
                f" FROM series se JOIN studies st USING (study_instance_uid) WHERE {where}"
                " ORDER BY se.series_number"
            )
        else:
            sql = (
                "SELECT st.*, se.series_instance_uid, se.modality, se.series_number, se.description AS se_desc,"  # noqa: S608
                " i.sop_instance_uid, i.sop_class_uid, i.instance_number"
                " FROM instances i JOIN series se USING (series_instance_uid)"
                f" JOIN studies st ON st.study_instance_uid = i.study_instance_uid WHERE {where}"
                " ORDER BY se.series_number, i.instance_number"
            )
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        for row in rows:
            yield self._answer(identifier, level, row)

    def _answer(self, identifier: Dataset, level: str, row: sqlite3.Row) -> Dataset:
        full = self._full_answer(level, row)
        answer = Dataset()
        charset = row["charset"] or "ISO_IR 100"
        answer.SpecificCharacterSet = charset.split("\\") if "\\" in charset else charset
        answer.QueryRetrieveLevel = level
        for elem in identifier:
            if elem.keyword in ("QueryRetrieveLevel", "SpecificCharacterSet"):
                continue
            if elem.tag in full:
                answer[elem.tag] = full[elem.tag]
            else:
                answer.add_new(elem.tag, elem.VR, None)  # unknown to us: returned empty
        return answer

    def _full_answer(self, level: str, row: sqlite3.Row) -> Dataset:
        ds = Dataset()
        study = row["study_instance_uid"]
        ds.StudyInstanceUID = study
        ds.PatientName = row["patient_name"]
        ds.PatientID = row["patient_id"]
        ds.IssuerOfPatientID = row["issuer_of_patient_id"]
        ds.PatientBirthDate = row["birth_date"]
        ds.PatientSex = row["sex"]
        ds.StudyDate = row["study_date"]
        ds.StudyTime = row["study_time"]
        ds.AccessionNumber = row["accession_number"]
        ds.StudyDescription = row["description"]
        ds.StudyID = row["study_id"]
        with self._lock:
            others = self._db.execute(
                "SELECT patient_id, issuer FROM other_ids WHERE study_instance_uid = ?", (study,)
            ).fetchall()
            counts = self._db.execute(
                "SELECT (SELECT COUNT(*) FROM series WHERE study_instance_uid = ?),"
                " (SELECT COUNT(*) FROM instances WHERE study_instance_uid = ?),"
                " (SELECT GROUP_CONCAT(DISTINCT modality) FROM series WHERE study_instance_uid = ?)",
                (study, study, study),
            ).fetchone()
            series_count = None
            if level in ("SERIES", "IMAGE"):
                series_count = self._db.execute(
                    "SELECT COUNT(*) FROM instances WHERE series_instance_uid = ?", (row["series_instance_uid"],)
                ).fetchone()[0]
        items = []
        for other in others:
            item = Dataset()
            item.PatientID = other["patient_id"]
            item.IssuerOfPatientID = other["issuer"]
            items.append(item)
        ds.OtherPatientIDsSequence = Sequence(items)
        ds.add_new(OTHER_PATIENT_IDS, "LO", [o["patient_id"] for o in others])
        ds.NumberOfStudyRelatedSeries = counts[0]
        ds.NumberOfStudyRelatedInstances = counts[1]
        ds.ModalitiesInStudy = sorted((counts[2] or "").split(",")) if counts[2] else ""
        if level in ("SERIES", "IMAGE"):
            ds.SeriesInstanceUID = row["series_instance_uid"]
            ds.Modality = row["modality"]
            ds.SeriesNumber = row["series_number"]
            ds.SeriesDescription = row["se_desc"]
            ds.NumberOfSeriesRelatedInstances = series_count
        if level == "IMAGE":
            ds.SOPInstanceUID = row["sop_instance_uid"]
            ds.SOPClassUID = row["sop_class_uid"]
            ds.InstanceNumber = row["instance_number"]
        return ds

    def instances_for(self, identifier: Dataset) -> list[StoredInstance]:
        """The stored files a C-GET/C-MOVE identifier asks for (by its unique keys)."""
        level = text(identifier, "QueryRetrieveLevel").upper()
        if level not in LEVELS:
            raise QueryError(f"unsupported Query/Retrieve Level {level!r}")
        keys = {"STUDY": ["StudyInstanceUID"], "SERIES": ["StudyInstanceUID", "SeriesInstanceUID"]}
        keys["IMAGE"] = keys["SERIES"] + ["SOPInstanceUID"]
        clauses, args = [], []
        for keyword, column in zip(
            keys[level], ["study_instance_uid", "series_instance_uid", "sop_instance_uid"], strict=False
        ):
            uids = [u for v in values(identifier, keyword) for u in v.split("\\") if u]
            if not uids:
                if keyword == "StudyInstanceUID" and level != "STUDY":
                    continue  # relational-ish leniency: series/SOP UIDs are unique on their own
                raise QueryError(f"{keyword} is required for a {level} level retrieve")
            clauses.append(f"{column} IN ({','.join('?' * len(uids))})")
            args += uids
        sql = (
            "SELECT path, sop_instance_uid, sop_class_uid, transfer_syntax FROM instances"  # noqa: S608
            f" WHERE {' AND '.join(clauses)} ORDER BY series_instance_uid, instance_number"
        )
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [StoredInstance(Path(r[0]), r[1], r[2], r[3]) for r in rows]
