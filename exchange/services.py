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
from directory.gateways import gateway_client
from directory.models import Gateway, Trust

from .models import QuarantinedInstance, ReceivedInstance

log = logging.getLogger(__name__)

UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


class GatewayUnavailable(Exception):
    """The trust's PACS could not answer; the message is for the person who searched."""


class StudyNotFound(Exception):
    pass


@dataclass(frozen=True)
class StudyRow:
    """A query result as the portal shows it: the NHS number apart from the local MRN."""

    study: Study
    local_patient_id: str

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


def iso_date(dicom_date: str) -> str | None:
    """DICOM DA (YYYYMMDD) as ISO 8601; None when absent or not a real date."""
    try:
        return datetime.strptime(dicom_date.strip(), "%Y%m%d").replace(tzinfo=UTC).date().isoformat()
    except ValueError:
        return None


def local_patient_id(study: Study) -> str:
    """The trust's own MRN: PatientID, unless that holds the NHS number, then the first other local ID."""
    if study.issuer_of_patient_id.upper() != NHS_ISSUER and study.patient_id != study.nhs_number:
        return study.patient_id
    others = [o.patient_id for o in study.other_patient_ids if o.issuer.upper() != NHS_ISSUER]
    return next((o for o in others if o != study.nhs_number), "")


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
        studies = gateway_client(gateway).find_studies(query)
    except (GatewayUnavailable, GatewayError) as exc:
        message = _unavailable_message(trust, exc)
        _record_search(trust, query, actor, Outcome.SERIOUS_FAILURE, {**detail, "error": str(exc)})
        raise GatewayUnavailable(message) from exc
    studies.sort(key=lambda s: (s.study_date, s.study_time), reverse=True)
    rows = [StudyRow(s, local_patient_id(s)) for s in studies]
    detail["results"] = len(rows)
    _record_search(trust, query, actor, Outcome.SUCCESS, detail, [s.study_instance_uid for s in studies])
    return rows


def _unavailable_message(trust: Trust, exc: Exception) -> str:
    if isinstance(exc, GatewayUnavailable):
        return str(exc)
    if isinstance(exc, ConfigurationError):  # our own settings, not the PACS: say who can fix them
        return f"{exc} An imaging manager of {trust.ods_code} must correct the gateway's settings."
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
        client = gateway_client(query_gateway(trust))
        found = client.find_studies(StudyQuery(study_instance_uid=study_uid, limit=1))
        series = client.find_series(study_uid) if found else []
    except (GatewayUnavailable, GatewayError) as exc:
        raise GatewayUnavailable(_unavailable_message(trust, exc)) from exc
    if not found:
        raise StudyNotFound(study_uid)
    row = StudyRow(found[0], local_patient_id(found[0]))
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


def series_json(series: Series) -> dict[str, Any]:
    return {
        "series_instance_uid": series.series_instance_uid,
        "modality": series.modality,
        "series_number": series.series_number,
        "description": series.description,
        "instance_count": series.instance_count,
    }


# --- gateway health -------------------------------------------------------------------------------


def gateway_echo(*, gateway: Gateway) -> EchoResult:
    """C-ECHO (or a QIDO-RS ping for DICOMweb) now; the result becomes the gateway's health."""
    try:
        result = gateway_client(gateway).echo()
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
