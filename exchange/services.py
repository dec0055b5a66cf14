"""Exchange services: searching a trust's PACS, gateway health, and what the receiver takes in.

Views, API endpoints, tasks and the receiver command call these; none of them repeats a rule.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit import catalogue
from audit.codes import Action, ActorType, EventID, Outcome
from audit.context import SYSTEM, Actor
from audit.services import record_event
from dicomkit import (
    Arrival,
    Caller,
    ConfigurationError,
    EchoResult,
    GatewayError,
    QuarantineRecord,
    Refusal,
    Series,
    Study,
    StudyQuery,
)
from dicomkit.admission import UNKNOWN_CALLER
from dicomkit.identity import NHS_ISSUER
from dicomkit.quarantine import move_record
from directory.access import GatewayBusy, Work, gateway_access
from directory.models import Gateway, Trust

from .models import QuarantinedInstance, ReceivedInstance

log = logging.getLogger(__name__)

UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


class GatewayUnavailable(Exception):
    """The trust's PACS could not answer; the message is for the person who searched. `busy`: it was not
    asked, because every connection the portal may open to it is in use (try again shortly)."""

    def __init__(self, message: str, *, busy: bool = False) -> None:
        super().__init__(message)
        self.busy = busy


class StudyNotFound(Exception):
    pass


@dataclass(frozen=True)
class StudyRow:
    """A query result as the portal shows it: the NHS number apart from the trust's own local ID
    ("" when the PACS holds the patient under no local ID of the trust, e.g. only the NHS number)."""

    study: Study
    local_patient_id: str
    local_issuer: str = ""

    def as_json(self) -> dict[str, Any]:
        s = self.study
        return {
            "study_instance_uid": s.study_instance_uid,
            "patient_name": s.patient_name,
            "patient_id": self.local_patient_id,
            "nhs_number": s.nhs_number or None,
            "birth_date": iso_date(s.birth_date),
            "sex": s.sex,
            "study_date": iso_date(s.study_date),
            "modalities": list(s.modalities),
            "description": s.description,
            "accession_number": s.accession_number,
            "series_count": s.series_count,
            "instance_count": s.instance_count,
        }

    def summary(self) -> dict[str, Any]:
        """as_json (the REST contract's study) and the local ID's issuer: what pages show of a study."""
        return {**self.as_json(), "patient_id_issuer": self.local_issuer if self.local_patient_id else ""}


def iso_date(dicom_date: str) -> str | None:
    """DICOM DA (YYYYMMDD) as ISO 8601; None when absent or not a real date."""
    try:
        return datetime.strptime(dicom_date.strip(), "%Y%m%d").replace(tzinfo=UTC).date().isoformat()
    except ValueError:
        return None


def local_identity(study: Study, issuer: str) -> tuple[str, str] | None:
    """The trust's own ID (and its issuer) in a study its PACS holds: an ID with the trust's issuer, in
    PatientID or an Other Patient ID; a PatientID with no issuer at all counts as the PACS's own (many PACS
    never fill the issuer). Never the NHS number, and never another trust's MRN that came with an arrival
    (kept among the Other Patient IDs). None when the PACS keys the patient by nothing local."""
    wanted = issuer.upper()
    slots = [(study.patient_id, study.issuer_of_patient_id, True)] + [
        (o.patient_id, o.issuer, False) for o in study.other_patient_ids
    ]
    for pid, pid_issuer, primary in slots:
        if not pid or pid == study.nhs_number or pid_issuer.upper() == NHS_ISSUER:
            continue
        if (wanted and pid_issuer.upper() == wanted) or (not pid_issuer and primary):
            return pid, pid_issuer or issuer
        if not wanted and pid_issuer:
            return pid, pid_issuer
    return None


def study_row(study: Study, trust: Trust) -> StudyRow:
    local = local_identity(study, trust.patient_id_issuer)
    return StudyRow(study, *(local or ("", "")))


# --- searching a trust's PACS ---------------------------------------------------------------------


def query_gateway(trust: Trust) -> Gateway:
    """The gateway to query: the first one that was not down at its last check, else the first."""
    gateways = sorted(trust.gateways.all(), key=lambda g: (g.status == Gateway.Status.DOWN, g.name))
    if not gateways:
        raise GatewayUnavailable(f"{trust.ods_code} has no DICOM gateway registered, so its PACS cannot be searched.")
    return gateways[0]


def _dicom_date(value: date | None) -> str:
    return value.strftime("%Y%m%d") if value else ""


def study_query_from(criteria: dict[str, Any]) -> StudyQuery:
    """Validated search criteria (see forms.StudySearchForm) as a DICOM study query."""
    return StudyQuery(
        nhs_number=criteria.get("nhs_number") or "",
        patient_id=criteria.get("patient_id") or "",
        patient_name=criteria.get("patient_name") or "",
        birth_date=_dicom_date(criteria.get("birth_date")),
        study_date_from=_dicom_date(criteria.get("study_date_from")),
        study_date_to=_dicom_date(criteria.get("study_date_to")),
        modality=criteria.get("modality") or "",
        accession_number=criteria.get("accession_number") or "",
    )


def _criteria_for_audit(criteria: dict[str, Any]) -> dict[str, str]:
    return {k: (v.isoformat() if isinstance(v, date) else str(v)) for k, v in criteria.items() if v}


def study_search(*, trust: Trust, criteria: dict[str, Any], actor: Actor) -> list[StudyRow]:
    """Live C-FIND / QIDO-RS of the trust's PACS; every search, answered or not, is a 110112 event."""
    query = study_query_from(criteria)
    detail: dict[str, Any] = {"query": _criteria_for_audit(criteria)}
    try:
        gateway = query_gateway(trust)
        detail["gateway"] = gateway.name
        with gateway_access(gateway, work=Work.SEARCH, subject="study search") as client:
            studies = client.find_studies(query)
    except (GatewayUnavailable, GatewayError) as exc:
        message = _unavailable_message(trust, exc)
        _record_search(trust, query, actor, Outcome.SERIOUS_FAILURE, {**detail, "error": str(exc)})
        raise GatewayUnavailable(message, busy=isinstance(exc, GatewayBusy)) from exc
    studies.sort(key=lambda s: (s.study_date, s.study_time), reverse=True)
    rows = [study_row(s, trust) for s in studies]
    detail["results"] = len(rows)
    _record_search(trust, query, actor, Outcome.SUCCESS, detail, [s.study_instance_uid for s in studies])
    return rows


def _unavailable_message(trust: Trust, exc: Exception) -> str:
    if isinstance(exc, GatewayUnavailable):
        return str(exc)
    if isinstance(exc, ConfigurationError):  # our own settings, not the PACS: say who can fix them
        return f"{exc} An imaging manager of {trust.ods_code} must correct the gateway's settings."
    if isinstance(exc, GatewayBusy):
        return f"The PACS of {trust.ods_code} was not searched: {exc}"
    return f"The PACS of {trust.ods_code} could not be searched just now: {exc}"


@transaction.atomic
def _record_search(
    trust: Trust, query: StudyQuery, actor: Actor, outcome: int, detail: dict, study_uids: list[str] | None = None
) -> None:
    record_event(
        event_id=EventID.QUERY,
        action=Action.EXECUTE,
        outcome=outcome,
        actor=actor,
        trust=trust.ods_code,
        nhs_number=query.nhs_number,
        patient_id=query.patient_id,
        study_uids=study_uids or (),
        detail=detail,
    )


def study_detail(*, trust: Trust, study_uid: str, actor: Actor) -> tuple[StudyRow, list[Series]]:
    """One study and its series with instance counts; looking at it is a 110103 Read event."""
    if not UID_RE.match(study_uid) or len(study_uid) > 64:
        raise StudyNotFound(study_uid)
    try:
        with gateway_access(query_gateway(trust), work=Work.SEARCH, subject="study detail") as client:
            found = client.find_studies(StudyQuery(study_instance_uid=study_uid, limit=1))
            series = client.find_series(study_uid) if found else []
    except (GatewayUnavailable, GatewayError) as exc:
        raise GatewayUnavailable(_unavailable_message(trust, exc), busy=isinstance(exc, GatewayBusy)) from exc
    if not found:
        raise StudyNotFound(study_uid)
    row = study_row(found[0], trust)
    series.sort(key=lambda s: (s.series_number is None, s.series_number or 0, s.series_instance_uid))
    with transaction.atomic():
        record_event(
            event_id=EventID.INSTANCES_ACCESSED,
            action=Action.READ,
            actor=actor,
            trust=trust.ods_code,
            nhs_number=row.study.nhs_number,
            patient_id=row.local_patient_id,
            study_uids=[study_uid],
            detail={"series": len(series), "view": "study detail"},
        )
    return row, series


def study_summaries(*, trust: Trust, study_uids: list[str], actor: Actor, purpose: str) -> list[dict[str, Any]]:
    """Who and what each named study is, from the trust's PACS (StudyRow.as_json), in the order given;
    a UID the PACS does not answer for keeps only its UID. Shown before a push or share, and kept with
    the transfer or link so lists can name the patient. One 110112 event for the lookup.

    Raises GatewayUnavailable when the PACS cannot answer."""
    uids = [u for u in dict.fromkeys(study_uids) if UID_RE.match(u) and len(u) <= 64]
    found: dict[str, dict[str, Any]] = {}
    try:
        with gateway_access(query_gateway(trust), work=Work.SEARCH, subject=f"study summaries: {purpose}") as client:
            for uid in uids:
                for study in client.find_studies(StudyQuery(study_instance_uid=uid, limit=1)):
                    found[uid] = study_row(study, trust).summary()
    except (GatewayUnavailable, GatewayError) as exc:
        raise GatewayUnavailable(_unavailable_message(trust, exc)) from exc
    numbers = {row["nhs_number"] for row in found.values() if row["nhs_number"]}
    _record_search(
        trust,
        StudyQuery(nhs_number=next(iter(numbers)) if len(numbers) == 1 else ""),
        actor,
        Outcome.SUCCESS,
        {"lookup": purpose, "results": len(found)},
        list(found),
    )
    return [found.get(uid, {"study_instance_uid": uid}) for uid in uids]


@dataclass
class LocalPatient:
    """A patient as the trust's own PACS holds them, gathered from their studies."""

    patient_id: str
    issuer: str
    names: set[str]
    birth_dates: set[str]
    sexes: set[str]
    nhs_numbers: set[str]
    studies: list[dict[str, Any]]
    found_by: str  # "NHS number", "name and birth date" or "local ID"


def local_patients(
    *,
    trust: Trust,
    actor: Actor,
    nhs_number: str = "",
    family_name: str = "",
    birth_date: str = "",
    patient_id: str = "",
    purpose: str = "",
) -> list[LocalPatient]:
    """The trust's patients by NHS number, then by family name and birth date (DICOM DA), or by a typed
    local ID: live queries of its PACS, grouped by the ID the PACS keys each patient by (its own local ID,
    or the NHS number where that is all it has). Each query is a 110112 event. Raises GatewayUnavailable."""
    queries = []
    if patient_id:
        queries.append(("local ID", StudyQuery(patient_id=patient_id)))
    if nhs_number:
        queries.append(("NHS number", StudyQuery(nhs_number=nhs_number)))
    if family_name and birth_date:
        queries.append(("name and birth date", StudyQuery(patient_name=f"{family_name}*", birth_date=birth_date)))
    found: dict[tuple[str, str], LocalPatient] = {}
    try:
        with gateway_access(query_gateway(trust), work=Work.SEARCH, subject=f"local patients: {purpose}") as client:
            answers = [(how, query, client.find_studies(query)) for how, query in queries]
        for how, query, studies in answers:
            _record_search(trust, query, actor, Outcome.SUCCESS, {"lookup": purpose, "results": len(studies)})
            for study in studies:
                key = local_identity(study, trust.patient_id_issuer) or (
                    (study.patient_id, NHS_ISSUER)
                    if study.patient_id and study.patient_id == study.nhs_number
                    else None
                )
                if key is None or (how == "local ID" and key[0] != patient_id):
                    continue
                patient = found.setdefault(key, LocalPatient(*key, set(), set(), set(), set(), [], how))
                patient.names.add(study.patient_name)
                patient.birth_dates.add(study.birth_date)
                patient.sexes.add(study.sex)
                if study.nhs_number:
                    patient.nhs_numbers.add(study.nhs_number)
                if all(s["study_instance_uid"] != study.study_instance_uid for s in patient.studies):
                    patient.studies.append(study_row(study, trust).summary())
    except (GatewayUnavailable, GatewayError) as exc:
        raise GatewayUnavailable(_unavailable_message(trust, exc)) from exc
    return list(found.values())


def series_json(series: Series) -> dict[str, Any]:
    return {
        "series_instance_uid": series.series_instance_uid,
        "modality": series.modality,
        "series_number": series.series_number,
        "description": series.description,
        "instance_count": series.instance_count,
    }


# --- gateway health -------------------------------------------------------------------------------


def gateway_echo(*, gateway: Gateway, work: Work = Work.ECHO) -> EchoResult:
    """C-ECHO (or a QIDO-RS ping for DICOMweb) now; the result becomes the gateway's health. Raises
    GatewayBusy, changing nothing, when every connection the portal may open to it is in use (an echo
    asked for from a page waits a few seconds first; the beat's health round does not wait)."""
    try:
        with gateway_access(gateway, work=work, subject="") as client:
            result = client.echo()
    except GatewayBusy:
        raise
    except GatewayError as exc:  # e.g. a configuration the client cannot even be built for
        result = EchoResult(ok=False, latency_ms=None, error=str(exc))
    Gateway.objects.filter(pk=gateway.pk).update(
        status=Gateway.Status.UP if result.ok else Gateway.Status.DOWN,
        last_checked=timezone.now(),
        latency_ms=result.latency_ms if result.ok else None,
        last_error="" if result.ok else result.error[:2000],
    )
    gateway.refresh_from_db(fields=["status", "last_checked", "latency_ms", "last_error"])
    return result


# --- the portal's own receiver -------------------------------------------------------------------


def _ae(value: str) -> str:
    return (value or "")[:16]


def _sender_trust(calling_ae: str, peer_address: str = "") -> Trust | None:
    """The trust whose gateway calls with this AE title, so its imaging managers see what it sent.

    AE titles are unique only with host and port, and a trust may register any title: when gateways of
    several trusts share it, the one at the caller's address decides, and if none does, nobody's."""
    if not calling_ae:
        return None
    gateways = list(Gateway.objects.filter(ae_title=calling_ae.strip()).select_related("trust"))
    if len({g.trust_id for g in gateways}) > 1:
        host = peer_address.rsplit(":", 1)[0].strip("[]")
        gateways = [g for g in gateways if host and g.host == host]
    trusts = {g.trust_id: g.trust for g in gateways}
    return next(iter(trusts.values())) if len(trusts) == 1 else None


def receiver_callers() -> list[Caller]:
    """Who may call the portal's receiver: every gateway with an AE title and a host, from that host."""
    gateways = Gateway.objects.exclude(ae_title="").exclude(host="").select_related("trust")
    return [Caller(g.ae_title, g.host, f"trust {g.trust.ods_code} {g.name}") for g in gateways]


@transaction.atomic
def receiver_refusal_record(refusal: Refusal) -> None:
    """The receiver's on_refused hook: an unknown caller is a 110113 Security Alert (Node Authentication,
    outcome 4) for regional administrators, and for the trust whose gateway has that AE title if one does
    (someone calls in its name from elsewhere, or its PACS moved). Limits reached are logged, not audited."""
    if refusal.kind != UNKNOWN_CALLER:
        return
    named = _sender_trust(refusal.calling_ae)
    catalogue.RECEIVER_REFUSED.record(
        actor=Actor(
            type=ActorType.ANONYMOUS,
            label=f"DICOM {refusal.calling_ae or '(no AE title)'} at {refusal.address}"[:254],
            client_ip=refusal.address or None,
        ),
        outcome=Outcome.MINOR_FAILURE,
        trust=named.ods_code if named else "",
        reason=refusal.reason,
        detail={
            "calling_ae": refusal.calling_ae,
            "called_ae": refusal.called_ae,
            "peer": refusal.address,
            "repeats": refusal.repeats,
            "at": refusal.at.isoformat(),
        },
    )


def received_instance_record(arrival: Arrival) -> ReceivedInstance:
    """The receiver's on_arrival hook: the instance is on disk; put it on the record."""
    return ReceivedInstance.objects.create(
        sop_instance_uid=arrival.sop_instance_uid,
        sop_class_uid=arrival.sop_class_uid,
        study_instance_uid=arrival.study_instance_uid,
        series_instance_uid=arrival.series_instance_uid,
        transfer_syntax_uid=arrival.transfer_syntax_uid,
        size=arrival.size,
        sha256=arrival.sha256,
        calling_ae=_ae(arrival.peer.calling_ae),
        called_ae=_ae(arrival.peer.called_ae),
        peer_address=arrival.peer.address[:100],
        sender_trust=_sender_trust(arrival.peer.calling_ae, arrival.peer.address),
        path=str(arrival.path),
        job_id=arrival.job_id or "",
        job_label=arrival.job_label[:200],
        duplicate=arrival.duplicate,
        pixel_warning=arrival.pixel_warning,
        received_at=arrival.received_at,
    )


def keep_refused_retrieval(record: QuarantineRecord, gateway: Gateway, *, actor: Actor = SYSTEM) -> QuarantinedInstance:
    """An instance a retrieve from `gateway` refused on arrival (damaged, or a second copy that differs)
    sits in the retrieve's scratch spool, which is deleted with it: it joins the receiver's quarantine,
    where the gateway's trust's imaging managers see it, and goes on the record as the receiver's do."""
    kept = move_record(record, Path(settings.SPOOL_DIR) / "receiver" / "quarantine", calling_ae=gateway.ae_title)
    return quarantined_instance_record(kept, actor=actor, sender_trust=gateway.trust)


@transaction.atomic
def quarantined_instance_record(
    record: QuarantineRecord, *, actor: Actor = SYSTEM, sender_trust: Trust | None = None
) -> QuarantinedInstance:
    """The receiver's on_quarantine hook: a row for imaging managers and a 110107 Import failure event.
    `sender_trust`: who sent it, when the caller knows (a retrieve from a trust's gateway)."""
    try:
        received_at = datetime.fromisoformat(record.received_at.replace("Z", "+00:00"))
    except ValueError:
        received_at = timezone.now()
    row = QuarantinedInstance.objects.create(
        reason=record.reason,
        status=record.status,
        calling_ae=_ae(record.calling_ae),
        called_ae=_ae(record.called_ae),
        peer_address=record.peer[:100],
        sender_trust=sender_trust or _sender_trust(record.calling_ae, record.peer),
        sop_instance_uid=record.sop_instance_uid[:64],
        sop_class_uid=record.sop_class_uid[:64],
        size=record.size,
        sha256=record.sha256,
        path=str(record.path),
        sidecar=str(record.sidecar),
        received_at=received_at,
    )
    # 8 (serious failure): the instance did not get in; the sender was told and may re-send.
    record_event(
        event_id=EventID.IMPORT,
        action=Action.CREATE,
        outcome=Outcome.SERIOUS_FAILURE,
        actor=actor,
        trust=row.sender_trust.ods_code if row.sender_trust else "",
        detail={
            "quarantined": row.pk,
            "reason": record.reason,
            "status": row.status_hex,
            "calling_ae": record.calling_ae,
            "peer": record.peer,
            "sop_instance_uid": record.sop_instance_uid,
            "path": str(record.path),
        },
    )
    return row
