"""DICOMweb gateway client: QIDO-RS queries, WADO-RS retrieve (streamed), STOW-RS store (streamed)."""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import requests
from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag

from .config import GatewayConfig
from .dedupe import MemoryIndex
from .errors import (
    AuthenticationFailed,
    ConfigurationError,
    GatewayError,
    GatewayTimeout,
    GatewayUnreachable,
    ProtocolError,
)
from .intake import Arrival, Intake, Peer, Route
from .models import EchoResult, Instance, RetrievedInstance, RetrieveSummary, Series, StoreResult, Study, StudyQuery
from .multipart import MultipartBody, boundary_of, iter_events
from .queries import (
    instance_from,
    instance_identifier,
    merge_studies,
    series_from,
    series_identifier,
    study_identifiers,
)
from .retrieval import Retrieval
from .spool import TEMP_PREFIX
from .structure import sop_instance_uid_of
from .validate import OUT_OF_RESOURCES

DICOM_JSON = "application/dicom+json"
# transfer-syntax=* asks for instances as stored: no server-side transcoding, no quality loss.
MULTIPART_DICOM = 'multipart/related; type="application/dicom"; transfer-syntax=*'
CHUNK = 1024 * 1024
DUPLICATE_REASON = "failure reason 0x0111"  # a STOW-RS FailedSOPSequence entry for an instance already held
_NOT_QUERY_KEYS = {"QueryRetrieveLevel", "SpecificCharacterSet"}


def qido_params(identifier: Dataset, limit: int = 0) -> list[tuple[str, str]]:
    """QIDO-RS query parameters for a C-FIND style identifier: values match, empties are returned."""
    params: list[tuple[str, str]] = []
    for elem in identifier:
        keyword = keyword_for_tag(elem.tag)
        if keyword in _NOT_QUERY_KEYS:
            continue
        key = f"{elem.tag.group:04X}{elem.tag.element:04X}"
        value = "" if elem.VR == "SQ" or elem.value is None else str(elem.value)
        params.append((key, value) if value else ("includefield", key))
    if limit:
        params.append(("limit", str(limit)))
    return params


# Characters a query value may carry without percent-encoding, plus the two wildcards.
_QUERY_SAFE = re.compile(r"[^A-Za-z0-9_.~*?-]+")


def qido_query_string(params: list[tuple[str, str]]) -> tuple[str, list[tuple[str, str]]]:
    """The query string, and the (key, value) pairs that were loosened and must be re-checked.

    Some servers (Orthanc 1.10 among them) only treat `*` and `?` as wildcards when they are not
    percent-encoded, and fail exact matches on escaped characters. So any run of characters that
    would need escaping becomes `*`; the answers are then filtered here against the real value.
    """
    parts: list[str] = []
    loosened: list[tuple[str, str]] = []
    for key, value in params:
        safe = _QUERY_SAFE.sub("*", value)
        if safe != value and key != "includefield":
            loosened.append((key, value))
        parts.append(f"{key}={safe}")
    return "&".join(parts), loosened


def _matches(pattern: str, value: str, *, fold_case: bool) -> bool:
    """DICOM wildcard matching (PS3.4 C.2.2.2.4) of one value."""
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, value, re.DOTALL | (re.IGNORECASE if fold_case else 0)) is not None


def _still_matches(ds: Dataset, loosened: list[tuple[str, str]]) -> bool:
    for key, pattern in loosened:
        elem = ds.get(Tag(int(key, 16)))
        value = "" if elem is None or elem.value is None else str(elem.value)
        if not _matches(pattern, value.strip(), fold_case=elem is not None and elem.VR == "PN"):
            return False
    return True


class DicomWebClient:
    def __init__(self, config: GatewayConfig, *, session: requests.Session | None = None) -> None:
        self.config = config
        self.base = config.dicomweb_url.rstrip("/")
        self.session = session or requests.Session()
        if config.bearer_token:
            self.session.headers["Authorization"] = f"Bearer {config.bearer_token}"
        elif config.username:
            self.session.auth = (config.username, config.password)
        self.session.verify = config.verify_tls

    # --- HTTP with readable failures -------------------------------------------------------------

    def _request(self, method: str, path: str, *, allow: tuple[int, ...] = (), **kwargs: Any) -> requests.Response:
        url = f"{self.base}{path}"
        timeout = (self.config.connect_timeout, self.config.http_timeout)
        try:
            response = self.session.request(method, url, timeout=timeout, **kwargs)
        except (UnicodeError, requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL) as exc:
            # Raised while building our own request (a credential or URL that cannot go on the wire):
            # the gateway's settings are wrong, not the PACS.
            raise ConfigurationError(
                f"The portal could not build its request to {self.config.name} ({exc}): "
                "check the gateway's DICOMweb URL and credentials."
            ) from exc
        except requests.exceptions.SSLError as exc:
            raise GatewayError(
                f"{self.config.name}: the TLS certificate of {self.base} could not be verified ({exc}).",
                permanent=True,
            ) from exc
        except requests.exceptions.ConnectTimeout as exc:
            raise GatewayUnreachable(
                f"{self.config.name} ({self.base}) did not answer within {self.config.connect_timeout:g} s."
            ) from exc
        except requests.exceptions.ConnectionError as exc:
            raise GatewayUnreachable(f"{self.config.name} ({self.base}) could not be reached: {exc}.") from exc
        except requests.exceptions.Timeout as exc:
            raise GatewayTimeout(
                f"{self.config.name} ({self.base}) stopped answering for {self.config.http_timeout:g} s."
            ) from exc
        if response.status_code not in allow:
            self._raise_for_status(response, method, path)
        return response

    def _raise_for_status(self, response: requests.Response, method: str, path: str) -> None:
        code = response.status_code
        if code < 400:
            return
        detail = (
            response.text[:200].strip() if not response.headers.get("Content-Type", "").startswith("multipart") else ""
        )
        response.close()
        what = f"{self.config.name} answered {method} {path} with HTTP {code}"
        if code in (401, 403):
            raise AuthenticationFailed(f"{what}: the credentials were refused.")
        if code == 404:
            raise ProtocolError(f"{what}: not found.", permanent=True)
        raise ProtocolError(f"{what}{': ' + detail if detail else ''}.", permanent=code < 500 and code != 429)

    def _json(self, path: str, params: list[tuple[str, str]] | None = None) -> list[Dataset]:
        query, loosened = qido_query_string(params or [])
        items = self._answers(f"{path}?{query}" if query else path)
        try:
            answers = [Dataset.from_json(item) for item in items]
        except ValueError as exc:
            raise ProtocolError(f"{self.config.name} sent QIDO-RS results that are not DICOM JSON ({exc}).") from exc
        return [ds for ds in answers if _still_matches(ds, loosened)]

    def _answers(self, path_and_query: str) -> list[dict[str, Any]]:
        """A QIDO-RS answer as plain DICOM JSON objects."""
        response = self._request("GET", path_and_query, headers={"Accept": DICOM_JSON})
        if response.status_code == 204 or not response.content.strip():
            return []
        try:
            answers = response.json()
        except ValueError as exc:
            raise ProtocolError(f"{self.config.name} sent QIDO-RS results that are not DICOM JSON ({exc}).") from exc
        if not isinstance(answers, list) or not all(isinstance(item, dict) for item in answers):
            raise ProtocolError(f"{self.config.name} sent QIDO-RS results that are not a DICOM JSON array.")
        return answers

    # --- QIDO-RS ---------------------------------------------------------------------------------

    def echo(self) -> EchoResult:
        started = time.monotonic()
        try:
            self._json("/studies", [("limit", "1"), ("includefield", "0020000D")])
        except GatewayError as exc:
            return EchoResult(ok=False, latency_ms=None, error=str(exc))
        return EchoResult(ok=True, latency_ms=round((time.monotonic() - started) * 1000, 1))

    def find_studies(self, query: StudyQuery) -> list[Study]:
        answers: list[Dataset] = []
        for identifier in study_identifiers(query):
            answers += self._json("/studies", qido_params(identifier, query.limit))
        return merge_studies(answers, query)

    def find_series(self, study_uid: str) -> list[Series]:
        found = [
            series_from(ds)
            for ds in self._json(f"/studies/{study_uid}/series", qido_params(series_identifier(study_uid)))
        ]
        for_study = [s if s.study_instance_uid else _with_study(s, study_uid) for s in found]
        return sorted(for_study, key=lambda s: (s.series_number is None, s.series_number or 0))

    def find_instances(self, study_uid: str, series_uid: str | None = None) -> list[Instance]:
        path = (
            f"/studies/{study_uid}/series/{series_uid}/instances" if series_uid else f"/studies/{study_uid}/instances"
        )
        query, loosened = qido_query_string(qido_params(instance_identifier(study_uid, series_uid)))
        if loosened:  # a series UID with characters to escape: the general path re-checks the matches
            found = [
                instance_from(ds) for ds in self._json(path, qido_params(instance_identifier(study_uid, series_uid)))
            ]
        else:  # read as plain JSON: a pydicom Dataset per instance of a large study cost more than the query
            found = [_instance_from_json(item, study_uid) for item in self._answers(f"{path}?{query}")]
        return sorted(found, key=lambda i: (i.series_instance_uid, i.instance_number or 0))

    def find_instance_uids(self, study_uid: str, sop_uids: Sequence[str] = ()) -> set[str]:
        """The SOP Instance UIDs of the study the gateway holds, among `sop_uids` if given (a QIDO-RS
        UID list, PS3.18 8.3.4.1). A server that ignores the list answers more; only UIDs asked for count."""
        path = f"/studies/{study_uid}/instances"
        if sop_uids:  # UIDs are digits and dots: nothing to escape, and a comma must stay a comma
            path += "?SOPInstanceUID=" + ",".join(sop_uids)
        found = {str(_json_value(item, "00080018")) for item in self._answers(path)} - {""}
        return found & set(sop_uids) if sop_uids else found

    # --- WADO-RS ---------------------------------------------------------------------------------

    def retrieve(
        self,
        study_uid: str,
        series_uid: str | None = None,
        sop_uids: Sequence[str] | None = None,
        *,
        spool_dir: Path,
        **_: Any,
    ) -> Retrieval:
        spool = Path(spool_dir)
        return Retrieval(lambda summary: self._wado(study_uid, series_uid, sop_uids, spool, summary))

    def _wado_paths(self, study: str, series: str | None, sops: Sequence[str] | None) -> list[str]:
        if not sops:
            return [f"/studies/{study}/series/{series}" if series else f"/studies/{study}"]
        if series:
            return [f"/studies/{study}/series/{series}/instances/{sop}" for sop in sops]
        where = {i.sop_instance_uid: i.series_instance_uid for i in self.find_instances(study)}
        missing = [sop for sop in sops if sop not in where]
        if missing:
            raise ProtocolError(
                f"{self.config.name} does not hold {len(missing)} of the requested instances.", permanent=True
            )
        return [f"/studies/{study}/series/{where[sop]}/instances/{sop}" for sop in sops]

    def _wado(
        self, study: str, series: str | None, sops: Sequence[str] | None, spool_dir: Path, summary: RetrieveSummary
    ) -> Generator[RetrievedInstance, None, None]:
        spool_dir.mkdir(parents=True, exist_ok=True)
        landed: list[Arrival] = []
        intake = Intake(
            incoming_dir=spool_dir,
            quarantine_dir=spool_dir / "quarantine",
            index=MemoryIndex(),
            route=lambda info, peer: Route(spool_dir),
            on_arrival=landed.append,
            on_quarantine=summary.quarantined.append,
            durable=False,  # a scratch spool, as C-GET's: after a crash the caller retrieves again
            consumed_copies_count=True,
        )
        peer = Peer(calling_ae="", called_ae="", address=self.base)
        for path in self._wado_paths(study, series, sops):
            response = self._request("GET", path, headers={"Accept": MULTIPART_DICOM}, stream=True)
            try:
                boundary = boundary_of(response.headers.get("Content-Type", ""))
                for temp, size, sha256 in _parts_to_files(response.iter_content(CHUNK), boundary, spool_dir):
                    # One answer from one server: the whole file's hash tells repeats apart as well as the
                    # data set's would (the file meta cannot differ), without hashing the file a second time.
                    status = intake.accept(temp, size=size, peer=peer, sha256=sha256, file_sha256=sha256)
                    if status == OUT_OF_RESOURCES:
                        raise GatewayError(f"could not keep an instance from {self.config.name} on disk.")
                    if landed:
                        summary.completed += 1
                        arrival = landed.pop()
                        if arrival.duplicate:  # a repeat of what was already handed over
                            continue
                        yield RetrievedInstance(
                            arrival.path,
                            arrival.sop_instance_uid,
                            arrival.sop_class_uid,
                            arrival.study_instance_uid,
                            arrival.series_instance_uid,
                            arrival.transfer_syntax_uid,
                            arrival.size,
                            arrival.file_sha256,
                        )
                    else:
                        summary.failed += 1
            except requests.exceptions.RequestException as exc:
                raise GatewayTimeout(f"{self.config.name} broke off the WADO-RS transfer: {exc}.") from exc
            finally:
                response.close()
        summary.status = 0

    # --- STOW-RS ---------------------------------------------------------------------------------

    def store(self, paths: Iterable[Path | str]) -> list[StoreResult]:
        """POST instances in batches of `stow_batch_size`; one result per file, in order."""
        ordered = [Path(p) for p in paths]
        results: list[StoreResult] = []
        size = max(1, self.config.stow_batch_size)
        for start in range(0, len(ordered), size):
            results += self._stow(ordered[start : start + size])
        return results

    def _stow(self, batch: list[Path]) -> list[StoreResult]:
        uids: dict[Path, str] = {}
        early: dict[Path, StoreResult] = {}
        for path in batch:
            try:
                uids[path] = sop_instance_uid_of(path)
            except (OSError, ValueError, AttributeError, InvalidDicomError) as exc:  # not DICOM: nothing to send
                early[path] = StoreResult(path, "", False, message=f"not a DICOM file: {exc}", permanent=True)
        sendable = [p for p in batch if p in uids]
        if not sendable:
            return [early[p] for p in batch]
        body = MultipartBody(sendable)
        # 409 Conflict: some instances failed; the answer says which.
        response = self._request(
            "POST",
            "/studies",
            allow=(409,),
            data=body,
            headers={"Content-Type": body.content_type, "Accept": DICOM_JSON},
        )
        outcome = _stow_outcome(response)
        return [early.get(p) or self._stow_result(p, uids[p], outcome) for p in batch]

    def _stow_result(self, path: Path, uid: str, outcome: tuple[dict[str, str], dict[str, str], str]) -> StoreResult:
        stored, failed, problem = outcome
        if uid in stored:
            return StoreResult(path, uid, True, status=0, message=stored[uid])
        if uid in failed:
            reason = failed[uid]
            if reason == DUPLICATE_REASON:  # PS3.18: the origin server already holds this SOP Instance
                return StoreResult(
                    path, uid, True, status=0x0111, message=f"{self.config.name} already holds it", already_present=True
                )
            return StoreResult(path, uid, False, message=f"{self.config.name} refused it: {reason}", permanent=True)
        return StoreResult(path, uid, False, message=problem or f"{self.config.name} did not acknowledge it")


def _with_study(series: Series, study_uid: str) -> Series:
    return replace(series, study_instance_uid=study_uid)


def _stow_outcome(response: requests.Response) -> tuple[dict[str, str], dict[str, str], str]:
    """({uid: warning}, {uid: failure reason}, problem) from a STOW-RS answer.

    Read as plain DICOM JSON (PS3.18 F.2): a pydicom Dataset of the answer cost more per batch than
    sending it."""
    try:
        answer = response.json() if response.content.strip() else {}
        if isinstance(answer, list):
            answer = answer[0] if answer else {}
        stored = {
            str(_json_value(item, "00081155")): (
                f"warning 0x{int(warning):04X}" if (warning := _json_value(item, "00081196")) != "" else ""
            )
            for item in _json_items(answer, "00081199")
        }
        failed = {
            str(_json_value(item, "00081155")): f"failure reason 0x{int(_json_value(item, '00081197') or 0):04X}"
            for item in _json_items(answer, "00081198")
        }
    except (ValueError, TypeError, AttributeError):
        return {}, {}, f"the STOW-RS answer (HTTP {response.status_code}) was not DICOM JSON"
    return stored, failed, ""


def _instance_from_json(item: dict[str, Any], study_uid: str) -> Instance:
    number = _json_value(item, "00200013")
    try:
        instance_number = int(float(number)) if number not in ("", None) else None
    except (TypeError, ValueError):
        instance_number = None
    return Instance(
        study_instance_uid=str(_json_value(item, "0020000D") or study_uid),
        series_instance_uid=str(_json_value(item, "0020000E")),
        sop_instance_uid=str(_json_value(item, "00080018")),
        sop_class_uid=str(_json_value(item, "00080016")),
        instance_number=instance_number,
    )


def _json_items(dataset: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    """The items of a DICOM JSON sequence attribute (none if absent)."""
    return (dataset.get(tag) or {}).get("Value") or []


def _json_value(dataset: dict[str, Any], tag: str) -> Any:
    """The first value of a DICOM JSON attribute, "" if it has none."""
    attribute = dataset.get(tag)
    values = attribute.get("Value") if isinstance(attribute, dict) else None
    return values[0] if isinstance(values, list) and values else ""


def _parts_to_files(chunks: Iterator[bytes], boundary: str, folder: Path) -> Iterator[tuple[Path, int, str]]:
    """Write each multipart part to a temp file as it streams in, hashing it on the way; yield
    (path, size, sha256 of the file). Not fsynced: the files are a retrieval's scratch spool, which a
    crash throws away (the caller's ledger, not the file, says what has arrived)."""
    handle = None
    temp: Path | None = None
    digest = hashlib.sha256()
    size = 0
    folder.mkdir(parents=True, exist_ok=True)
    try:
        for kind, value in iter_events(chunks, boundary):
            if kind == "headers":
                temp = folder / f"{TEMP_PREFIX}{uuid.uuid4().hex}.dcm"
                handle = open(temp, "wb")  # noqa: SIM115 - closed at "end" or in finally
                digest, size = hashlib.sha256(), 0
            elif kind == "data" and handle is not None and isinstance(value, bytes):
                handle.write(value)
                digest.update(value)
                size += len(value)
            elif kind == "end" and handle is not None and temp is not None:
                handle.close()
                handle = None
                yield temp, size, digest.hexdigest()
                temp = None
    finally:
        if handle is not None:
            handle.close()
        if temp is not None:
            temp.unlink(missing_ok=True)
