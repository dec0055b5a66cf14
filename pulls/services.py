"""Requests (pulls): create (with the source PACS's candidate studies), approve, decline, auto-approve,
escalate. Each writes its audit event in its own transaction; emails and transfers go out on commit."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts import permissions as perms
from audit import catalogue
from audit.codes import ActorType, Outcome
from audit.context import Actor, system_actor
from dicomkit import GatewayError, StudyQuery, nhs
from directory.access import Work, gateway_access
from directory.models import SharingAgreement, Trust
from directory.services import agreement_allows
from exchange.services import GatewayUnavailable, query_gateway, study_row
from transfers.models import Priority
from transfers.services import transfer_create_for_request

from . import notifications
from .models import PullRequest, RequestStatus, Sex

MAX_TEXT = 64
AUTO_APPROVER = system_actor("auto-approval under a sharing agreement")
_MODALITY = re.compile(r"^[A-Z]{2,4}$")


def _actor(user, actor: Actor | None) -> Actor:
    return actor or Actor(type=ActorType.USER, user_id=user.pk, label=user.email)


# --- creating a request --------------------------------------------------------------------------


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    """Field by field, every problem at once (the API answers 400 with each field's message)."""
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    try:
        out["nhs_number"] = nhs.normalise(values.get("nhs_number") or "")
    except nhs.InvalidNHSNumber as exc:
        errors["nhs_number"] = str(exc)
    for name in ("family_name", "given_name"):
        text = (values.get(name) or "").strip()
        if not text:
            errors[name] = "Required: it is checked against what the other trust's PACS holds."
        elif len(text) > MAX_TEXT or "^" in text or "\\" in text:
            errors[name] = f"At most {MAX_TEXT} characters, without ^ or \\."
        out[name] = text
    birth_date = values.get("birth_date")
    if not isinstance(birth_date, date):
        errors["birth_date"] = "Required (YYYY-MM-DD)."
    elif birth_date > timezone.localdate():
        errors["birth_date"] = "A birth date cannot be in the future."
    out["birth_date"] = birth_date
    sex = values.get("sex") or ""
    if sex not in Sex.values:
        errors["sex"] = f"One of {', '.join(Sex.values)}."
    out["sex"] = sex
    out["date_from"], out["date_to"] = values.get("date_from"), values.get("date_to")
    if out["date_from"] and out["date_to"] and out["date_from"] > out["date_to"]:
        errors["date_to"] = "The end of the date range is before its start."
    modalities = values.get("modalities") or []
    if isinstance(modalities, str) or not isinstance(modalities, list | tuple):
        errors["modalities"] = 'A list of modality codes, e.g. ["CT", "MR"].'
        modalities = []
    modalities = list(dict.fromkeys(str(m).strip().upper() for m in modalities if str(m).strip()))
    if any(not _MODALITY.match(m) for m in modalities):
        errors["modalities"] = "Modality codes are 2-4 capital letters, e.g. CT, MR, CR."
    out["modalities"] = modalities
    priority = values.get("priority") or Priority.ROUTINE
    if priority not in Priority.values:
        errors["priority"] = f"One of {', '.join(Priority.values)}."
    out["priority"] = priority
    reason = (values.get("reason") or "").strip()
    if not reason:
        errors["reason"] = "Say why these images are needed (it goes on the audit trail)."
    out["reason"] = reason
    if errors:
        raise ValidationError(errors)
    return out


def requesting_trust_for(user, trust: Trust | None) -> Trust:
    """The trust asking: the one named, or the user's only trust where they may request."""
    if trust is not None:
        return trust
    trust_ids = perms.member_trust_ids(user, perms.Perm.REQUEST_STUDIES)
    if len(trust_ids) == 1:
        return Trust.objects.get(pk=next(iter(trust_ids)))
    if not trust_ids:
        raise PermissionDenied("Only clinicians may request images from another trust.")
    raise ValidationError({"requesting_trust": "You work at several trusts: say which one is asking."})


def request_create(
    *,
    requesting_trust: Trust | None,
    source_trust: Trust,
    requested_by,
    actor: Actor | None = None,
    **values: Any,
) -> PullRequest:
    """A clinician of the requesting trust asks `source_trust` for a patient's images.

    Checks first (nothing is written on bad input), then asks the source's PACS for the patient's
    studies, then records the request; an eligible urgent request is approved in the same transaction.
    """
    requesting_trust = requesting_trust_for(requested_by, requesting_trust)
    if not perms.may_request_for(requested_by, requesting_trust.pk):
        raise PermissionDenied(f"Only clinicians of {requesting_trust.ods_code} may request images for it.")
    if source_trust.pk == requesting_trust.pk:
        raise ValidationError({"source_trust": "Search your own trust's PACS instead of requesting from it."})
    clean = _clean(values)
    if not agreement_allows(source_trust, requesting_trust):
        raise ValidationError(
            {
                "source_trust": f"No active sharing agreement lets {source_trust.ods_code} send images to "
                f"{requesting_trust.ods_code}."
            }
        )
    candidates, error = find_candidates(source_trust, clean)
    with transaction.atomic():
        request = PullRequest.objects.create(
            requesting_trust=requesting_trust,
            source_trust=source_trust,
            requested_by=requested_by,
            candidates=candidates,
            candidates_error=error,
            **clean,
        )
        catalogue.REQUEST_CREATED.record(
            actor=_actor(requested_by, actor),
            outcome=Outcome.SUCCESS if not error else Outcome.MINOR_FAILURE,
            trust=source_trust.ods_code,
            peer_trust=requesting_trust.ods_code,
            nhs_number=request.nhs_number,
            study_uids=request.candidate_uids,
            reason=request.reason,
            detail={"request": request.pk, "priority": request.priority, "candidates": len(candidates)},
        )
        if not (auto_approval_applies(request) and _try_auto_approve(request)):
            notifications.on_commit_new_request(request.pk)
    return request


def find_candidates(source: Trust, clean: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """The source PACS's studies of this NHS number (date range, modalities), each with its mismatches."""
    query = StudyQuery(
        nhs_number=clean["nhs_number"],
        study_date_from=clean["date_from"].strftime("%Y%m%d") if clean["date_from"] else "",
        study_date_to=clean["date_to"].strftime("%Y%m%d") if clean["date_to"] else "",
    )
    try:
        with gateway_access(query_gateway(source), work=Work.SEARCH, subject="request candidates") as client:
            studies = client.find_studies(query)
    except (GatewayUnavailable, GatewayError) as exc:
        return [], f"The PACS of {source.ods_code} could not be searched: {exc}"
    wanted = set(clean["modalities"])
    rows = []
    for study in studies:
        if wanted and not wanted & set(study.modalities):
            continue
        row = study_row(study, source).summary()
        row["mismatches"] = mismatches(clean, row, study.patient_name)
        # The patient as the PACS keys it (PatientID may be the NHS number itself, leaving no local MRN).
        row["pacs_patient"] = [study.patient_id, study.issuer_of_patient_id]
        rows.append(row)
    return rows, ""


def _name_parts(dicom_name: str) -> tuple[str, str]:
    parts = ([*dicom_name.split("=")[0].split("^"), "", ""])[:2]
    return parts[0].strip().casefold(), parts[1].strip().casefold()


def mismatches(clean: dict[str, Any], row: dict[str, Any], dicom_name: str) -> list[str]:
    """Which of birth date, sex and name disagree between the request and the PACS (absent: no flag)."""
    found = []
    if row.get("birth_date") and row["birth_date"] != clean["birth_date"].isoformat():
        found.append("birth_date")
    if row.get("sex") in ("M", "F") and clean["sex"] in ("M", "F") and row["sex"] != clean["sex"]:
        found.append("sex")
    family, given = _name_parts(dicom_name)
    if family and (family, given) != (clean["family_name"].casefold(), clean["given_name"].casefold()):
        found.append("name")
    return found


# --- auto-approval --------------------------------------------------------------------------------


def auto_approval_applies(request: PullRequest) -> bool:
    """Urgent or trauma, from a major trauma centre, under an agreement that says so, and exactly one
    patient at the source with this NHS number whose birth date agrees with the request's."""
    if request.priority not in (Priority.URGENT, Priority.TRAUMA) or not request.requesting_trust.major_trauma_centre:
        return False
    pair = SharingAgreement.objects.filter(
        active=True,
        auto_approve_urgent=True,
        trust_a__in=(request.source_trust, request.requesting_trust),
        trust_b__in=(request.source_trust, request.requesting_trust),
    )
    if not any(a.allows(request.source_trust, request.requesting_trust) for a in pair):
        return False
    if not request.candidates:
        return False
    patients = {tuple(c.get("pacs_patient") or ("", "")) for c in request.candidates}
    birth_dates = {c.get("birth_date") for c in request.candidates}
    return len(patients) == 1 and ("", "") not in patients and birth_dates == {request.birth_date.isoformat()}


def _try_auto_approve(request: PullRequest) -> bool:
    """Approve at once; when no transfer can be set up (e.g. no gateway to retrieve from), the request
    stays pending for a person rather than failing: it is recorded either way."""
    try:
        with transaction.atomic():
            _approve(request, request.candidate_uids, user=None, actor=AUTO_APPROVER, auto=True)
    except ValidationError:
        request.refresh_from_db()
        return False
    return True


def request_search_again(*, request: PullRequest, user, actor: Actor | None = None) -> PullRequest:
    """Ask the source PACS again for a pending request's studies (it may have been down, or the studies
    not yet archived when the request was made). The requester or the source's approvers may; an urgent
    request that now qualifies for auto-approval is approved as if it had just been made.

    The PACS is asked before the request is locked: a query holds one of the gateway's slots, which other
    processes must see taken, and a row lock must not wait on a PACS."""
    request = PullRequest.objects.select_related("source_trust", "requesting_trust").get(pk=request.pk)
    _check_search_again(request, user)
    candidates = find_candidates(request.source_trust, _criteria_of(request))
    with transaction.atomic():
        request = (
            PullRequest.objects.select_for_update()
            .select_related("source_trust", "requesting_trust")
            .get(pk=request.pk)
        )
        _check_search_again(request, user)  # decided meanwhile?
        return _record_search_again(request, candidates, user=user, actor=actor)


def _check_search_again(request: PullRequest, user) -> None:
    if not perms.may_search_request_again(user, request):
        raise PermissionDenied("Only the requester or the source trust's approvers may search again.")
    if request.status != RequestStatus.PENDING:
        raise ValidationError({"detail": f"This request has already been {request.get_status_display().lower()}."})


def _criteria_of(request: PullRequest) -> dict[str, Any]:
    return {
        "nhs_number": request.nhs_number,
        "family_name": request.family_name,
        "given_name": request.given_name,
        "birth_date": request.birth_date,
        "sex": request.sex,
        "date_from": request.date_from,
        "date_to": request.date_to,
        "modalities": request.modalities,
    }


def _record_search_again(
    request: PullRequest, candidates: tuple[list[dict[str, Any]], str], *, user, actor: Actor | None
) -> PullRequest:
    request.candidates, request.candidates_error = candidates
    request.save(update_fields=["candidates", "candidates_error"])
    catalogue.STUDY_SEARCH.record(
        actor=_actor(user, actor),
        outcome=Outcome.SUCCESS if not request.candidates_error else Outcome.MINOR_FAILURE,
        trust=request.source_trust.ods_code,
        peer_trust=request.requesting_trust.ods_code,
        nhs_number=request.nhs_number,
        study_uids=request.candidate_uids,
        reason=request.reason,
        detail={"request": request.pk, "search_again": True, "candidates": len(request.candidates)},
    )
    if auto_approval_applies(request):
        _try_auto_approve(request)
    return request


# --- approving and declining ----------------------------------------------------------------------


def _locked_for_decision(request: PullRequest, user) -> PullRequest:
    request = (
        PullRequest.objects.select_for_update().select_related("source_trust", "requesting_trust").get(pk=request.pk)
    )
    if not perms.may_approve_requests_at(user, request.source_trust_id):
        raise PermissionDenied(f"Only imaging managers and clinicians of {request.source_trust.ods_code} may decide.")
    if request.status != RequestStatus.PENDING:
        raise ValidationError({"detail": f"This request has already been {request.get_status_display().lower()}."})
    return request


@transaction.atomic
def request_approve(
    *, request: PullRequest, user, study_instance_uids: Iterable[str] | None = None, actor: Actor | None = None
) -> PullRequest:
    """Approve all candidate studies (none named) or the chosen ones: a transfer to the requesting trust."""
    request = _locked_for_decision(request, user)
    uids = list(dict.fromkeys(str(u).strip() for u in (study_instance_uids or []) if str(u).strip()))
    if not request.candidates:
        raise ValidationError({"study_instance_uids": "The source's PACS listed no studies for this request."})
    if not uids:
        uids = request.candidate_uids
    unknown = [u for u in uids if u not in request.candidate_uids]
    if unknown:
        raise ValidationError(
            {"study_instance_uids": f"Not among this request's candidate studies: {', '.join(unknown[:5])}."}
        )
    return _approve(request, uids, user=user, actor=_actor(user, actor), auto=False)


def _approve(request: PullRequest, uids: list[str], *, user, actor: Actor, auto: bool) -> PullRequest:
    transfer = transfer_create_for_request(
        source=request.source_trust,
        destination=request.requesting_trust,
        study_instance_uids=uids,
        priority=request.priority,
        reason=request.reason,
        requested_by=request.requested_by,
        studies=request.candidates,
    )
    request.status = RequestStatus.APPROVED
    request.approved_study_uids = uids
    request.transfer = transfer
    request.auto_approved = auto
    request.decided_by = user
    request.decided_at = timezone.now()
    request.save()
    common = {
        "actor": actor,
        "trust": request.source_trust.ods_code,
        "peer_trust": request.requesting_trust.ods_code,
        "nhs_number": request.nhs_number,
        "study_uids": uids,
        "reason": request.reason,
    }
    if auto:
        catalogue.EMERGENCY_AUTO_APPROVAL.record(
            **common, detail={"request": request.pk, "transfer": transfer.pk, "priority": request.priority}
        )
    catalogue.REQUEST_APPROVED.record(
        **common, detail={"request": request.pk, "transfer": transfer.pk, "auto_approved": auto}
    )
    notifications.on_commit_decision(request.pk)
    return request


@transaction.atomic
def request_decline(*, request: PullRequest, user, reason: str, actor: Actor | None = None) -> PullRequest:
    reason = (reason or "").strip()
    request = _locked_for_decision(request, user)
    if not reason:
        raise ValidationError({"reason": "Say why, so the requesting clinician can act on it."})
    request.status = RequestStatus.DECLINED
    request.decline_reason = reason
    request.decided_by = user
    request.decided_at = timezone.now()
    request.save()
    catalogue.REQUEST_DECLINED.record(
        actor=_actor(user, actor),
        trust=request.source_trust.ods_code,
        peer_trust=request.requesting_trust.ods_code,
        nhs_number=request.nhs_number,
        reason=reason,
        detail={"request": request.pk},
    )
    notifications.on_commit_decision(request.pk)
    return request


# --- timers ---------------------------------------------------------------------------------------


def request_escalate_overdue(now=None) -> int:
    """Email the source trust's approvers about each request left unanswered past its priority's limit."""
    now = now or timezone.now()
    count = 0
    for priority, seconds in settings.REQUEST_ESCALATE_AFTER.items():
        overdue = PullRequest.objects.filter(
            status=RequestStatus.PENDING,
            escalated_at__isnull=True,
            priority=priority,
            created_at__lte=now - timedelta(seconds=seconds),
        )
        for pk in overdue.values_list("pk", flat=True):
            count += _escalate(pk, now)
    return count


@transaction.atomic
def _escalate(pk: int, now) -> int:
    request = PullRequest.objects.select_for_update().select_related("source_trust", "requesting_trust").get(pk=pk)
    if request.status != RequestStatus.PENDING or request.escalated_at:
        return 0  # decided or escalated by another beat run meanwhile
    request.escalated_at = now
    request.save(update_fields=["escalated_at"])
    catalogue.REQUEST_ESCALATED.record(
        actor=system_actor("request escalation timer"),
        trust=request.source_trust.ods_code,
        peer_trust=request.requesting_trust.ods_code,
        nhs_number=request.nhs_number,
        detail={
            "request": request.pk,
            "priority": request.priority,
            "waiting_seconds": int((now - request.created_at).total_seconds()),
        },
    )
    notifications.on_commit_escalation(request.pk)
    return 1


# --- arrival --------------------------------------------------------------------------------------


def request_notify_arrival(transfer_id: int) -> None:
    """Tell the requester their images have arrived (once), when a requested transfer has finished."""
    with transaction.atomic():
        request = PullRequest.objects.select_for_update().filter(transfer_id=transfer_id).first()
        if request is None or request.arrival_notified_at:
            return
        request.arrival_notified_at = timezone.now()
        request.save(update_fields=["arrival_notified_at"])
        notifications.on_commit_arrival(request.pk)
