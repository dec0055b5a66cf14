"""Writing share links and second opinions: create, revoke, purge, submit an opinion, file it back.

Each writes its audit event in its own transaction; email and Celery work go out only on commit.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

import pydicom
import structlog
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts import permissions as perms
from audit import catalogue
from audit.codes import ActorType
from audit.context import Actor, system_actor
from copies import services as copies_services
from dicomkit import GatewayError
from directory.access import Work, gateway_access
from directory.models import Gateway, Trust
from portal.enqueue import enqueue_after_commit

from . import sr, staging, tasks, tokens
from .models import Filing, SecondOpinion, ShareLink

log = structlog.get_logger(__name__)

MAX_STUDIES = 20
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
# Staging retrieves by C-GET or WADO-RS, as the transfer engine does (C-MOVE needs the receiver).
RETRIEVE_METHODS = (Gateway.RetrieveMethod.C_GET, Gateway.RetrieveMethod.WADO_RS)


def _actor(user, actor: Actor | None) -> Actor:
    return actor or Actor(type=ActorType.USER, user_id=user.pk, label=user.email)


def link_url(token: str) -> str:
    return settings.SITE_URL + reverse("sharing:open", kwargs={"token": token})


def _clean_uids(values: Iterable[str]) -> list[str]:
    if isinstance(values, str) or not isinstance(values, list | tuple):
        raise ValidationError({"study_instance_uids": "A list of Study Instance UIDs."})
    uids = list(dict.fromkeys(str(v).strip() for v in values if str(v).strip()))
    if not uids:
        raise ValidationError({"study_instance_uids": "Choose at least one study."})
    if len(uids) > MAX_STUDIES:
        raise ValidationError({"study_instance_uids": f"At most {MAX_STUDIES} studies in one link."})
    bad = [uid for uid in uids if len(uid) > 64 or not _UID.match(uid)]
    if bad:
        raise ValidationError({"study_instance_uids": f"Not a DICOM UID: {', '.join(bad[:5])}."})
    return uids


def _source_gateway(trust: Trust) -> Gateway:
    gateways = Gateway.objects.filter(trust=trust, retrieve_method__in=RETRIEVE_METHODS).order_by("pk")
    ranked = sorted(gateways, key=lambda g: {"up": 0, "unknown": 1}.get(g.status, 2))
    if not ranked:
        raise ValidationError(
            {"trust": f"{trust.ods_code} has no gateway to copy from by C-GET or WADO-RS; ask its imaging manager."}
        )
    return ranked[0]


def _validated(trust: Trust, *, recipient_email: str, recipient_name: str, purpose: str, hours: object) -> dict:
    errors: dict[str, str] = {}
    email = (recipient_email or "").strip()
    try:
        validate_email(email)
    except ValidationError:
        errors["recipient_email"] = "Enter the consultant's email address."
    name = (recipient_name or "").strip()
    if not name or len(name) > 200:
        errors["recipient_name"] = "Enter the consultant's name (200 characters at most)."
    purpose = (purpose or "").strip()
    if not purpose:
        errors["purpose"] = "Say why the consultant needs these images (it goes on the audit trail)."
    try:
        hours_int = int(hours)  # type: ignore[call-overload]  # any input: what int() refuses is caught
    except (TypeError, ValueError):
        hours_int = 0
    if not 1 <= hours_int <= trust.share_link_max_hours:
        errors["expires_in_hours"] = (
            f"Between 1 and {trust.share_link_max_hours} hours (the most {trust.ods_code} allows)."
        )
    if errors:
        raise ValidationError(errors)
    return {"recipient_email": email, "recipient_name": name, "purpose": purpose, "hours": hours_int}


@transaction.atomic
def share_link_create(
    *,
    trust: Trust,
    study_instance_uids: Iterable[str],
    recipient_email: str,
    recipient_name: str,
    purpose: str,
    created_by,
    expires_in_hours: int | None = None,
    allow_download: bool = False,
    allow_write_back: bool = False,
    actor: Actor | None = None,
    studies: list[dict] | None = None,
) -> tuple[ShareLink, str]:
    """A new link and its URL. The URL (it holds the token) is returned here once and never again."""
    if not perms.may_create_share_link(created_by, trust.pk):
        raise PermissionDenied(f"Only clinicians of {trust.ods_code} may share its studies.")
    hours = settings.SHARE_LINK_DEFAULT_HOURS if expires_in_hours in (None, "") else expires_in_hours
    data = _validated(
        trust, recipient_email=recipient_email, recipient_name=recipient_name, purpose=purpose, hours=hours
    )
    uids = _clean_uids(study_instance_uids)
    token = tokens.new_token()
    link = ShareLink.objects.create(
        trust=trust,
        gateway=_source_gateway(trust),
        created_by=created_by,
        study_instance_uids=uids,
        recipient_name=data["recipient_name"],
        recipient_email=data["recipient_email"],
        purpose=data["purpose"],
        allow_download=bool(allow_download),
        allow_write_back=bool(allow_write_back),
        token_hash=tokens.token_hash(token),
        expires_at=timezone.now() + timedelta(hours=data["hours"]),
        studies=[s for uid in uids for s in (studies or []) if s.get("study_instance_uid") == uid][: len(uids)],
    )
    catalogue.SHARE_LINK_CREATED.record(
        actor=_actor(created_by, actor),
        trust=trust.ods_code,
        study_uids=uids,
        reason=data["purpose"],
        detail={
            "share_link": link.pk,
            "recipient": link.recipient_email,
            "expires_at": link.expires_at.isoformat(),
            "write_back": link.allow_write_back,
        },
    )
    url = link_url(token)
    transaction.on_commit(lambda: _send_link_email(link, url))
    _enqueue_staging(link.pk)
    return link, url


def _enqueue_staging(link_id: int) -> None:  # also sharing.sweeper's
    enqueue_after_commit(tasks.stage_share_link, link_id)


def _send_link_email(link: ShareLink, url: str) -> None:
    context = {"link": link, "url": url, "sender": link.created_by, "trust": link.trust}
    send_mail(
        subject=f"Images shared with you for a second opinion by {link.trust.name}",
        message=render_to_string("sharing/email/link.txt", context),
        from_email=None,
        recipient_list=[link.recipient_email],
    )


@transaction.atomic
def share_link_revoke(*, link: ShareLink, user, actor: Actor | None = None) -> ShareLink:
    """Revoke at once; the staged copy is deleted as soon as the revocation commits."""
    if not perms.may_manage_share_link(user, link):
        raise PermissionDenied("Only its creator or an imaging manager of the trust may revoke a link.")
    link = ShareLink.objects.select_for_update().select_related("trust").get(pk=link.pk)
    if link.revoked_at:
        return link
    link.revoked_at = timezone.now()
    link.revoked_by = user
    link.save(update_fields=["revoked_at", "revoked_by"])
    catalogue.SHARE_LINK_REVOKED.record(
        actor=_actor(user, actor),
        trust=link.trust.ods_code,
        study_uids=link.study_instance_uids,
        detail={"share_link": link.pk},
    )
    transaction.on_commit(lambda: staging.purge(link))
    return link


def purge_finished_links() -> int:
    """Delete the staged copies of expired and revoked links (the beat task's work)."""
    due = ShareLink.objects.filter(purged_at__isnull=True).filter(
        Q(revoked_at__isnull=False) | Q(expires_at__lte=timezone.now())
    )
    return sum(1 for link in due if staging.purge(link))


# --- second opinions -------------------------------------------------------------------------------


def opinion_dir(opinion_id: int) -> Path:
    return Path(settings.SPOOL_DIR) / "opinions" / str(int(opinion_id))


@transaction.atomic
def opinion_submit(
    *,
    link: ShareLink,
    text: str,
    conclusion: str,
    urgent: bool,
    consultant_name: str,
    registration_number: str,
    actor: Actor,
) -> SecondOpinion:
    """Record the opinion, build its SR documents from the staged copy, and email the trust on commit."""
    errors = {}
    for field, value, limit in (
        ("text", text, 20000),
        ("conclusion", conclusion, 5000),
        ("consultant_name", consultant_name, 200),
        ("registration_number", registration_number, 32),
    ):
        if not (value or "").strip():
            errors[field] = "This field is required."
        elif len(value) > limit:
            errors[field] = f"At most {limit} characters."
    if errors:
        raise ValidationError(errors)
    fields = {
        "text": text.strip(),
        "conclusion": conclusion.strip(),
        "urgent": bool(urgent),
        "consultant_name": consultant_name.strip(),
        "registration_number": registration_number.strip(),
    }
    # The same opinion again (the thank-you page refreshed, the button pressed twice) is the one already
    # sent: not a second report, email and SR in the trust's PACS. The link's row lock orders the two.
    ShareLink.objects.select_for_update().filter(pk=link.pk).first()
    sent = SecondOpinion.objects.filter(link=link, **fields).first()
    if sent is not None:
        return sent
    opinion = SecondOpinion.objects.create(link=link, **fields)
    opinion.sr_uids = _write_sr_documents(link, opinion)
    opinion.save(update_fields=["sr_uids"])
    catalogue.SECOND_OPINION.record(
        actor=actor,
        trust=link.trust.ods_code,
        study_uids=link.study_instance_uids,
        nhs_number=link.nhs_number,
        patient_id=link.patient_id,
        detail={"share_link": link.pk, "opinion": opinion.pk, "urgent": opinion.urgent},
    )
    # The rule: every use of a link is also a 110103 with the link as the actor.
    catalogue.SHARE_LINK_ACCESSED.record(
        actor=actor,
        trust=link.trust.ods_code,
        study_uids=link.study_instance_uids,
        nhs_number=link.nhs_number,
        patient_id=link.patient_id,
        detail={"what": "opinion", "share_link": link.pk, "opinion": opinion.pk},
    )
    transaction.on_commit(lambda: _notify_opinion(opinion))
    _enqueue_filing(opinion.pk)
    return opinion


def _write_sr_documents(link: ShareLink, opinion: SecondOpinion) -> dict:
    """One SR per study of the link, written now while the staged copy (the patient module) exists."""
    folder = staging.share_dir(link.pk)
    written = {}
    content = sr.Opinion(
        text=opinion.text,
        conclusion=opinion.conclusion,
        urgent=opinion.urgent,
        consultant_name=opinion.consultant_name,
        registration_number=opinion.registration_number,
        written_at=timezone.localtime(opinion.created_at),
    )
    for study_uid in link.study_instance_uids:
        source = _an_instance_of(folder, study_uid)
        if source is None:
            continue
        ds = sr.basic_text_sr(source, content)
        sr.write(ds, opinion_dir(opinion.pk) / f"{ds.SOPInstanceUID}.dcm")
        written[study_uid] = {"series": str(ds.SeriesInstanceUID), "sop": str(ds.SOPInstanceUID)}
    if not written:
        raise ValidationError("The images of this link are no longer available to attach the opinion to.")
    return written


def _an_instance_of(folder: Path, study_uid: str) -> pydicom.Dataset | None:
    for path in sorted(folder.glob("*.dcm")):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # noqa: BLE001,S112 - an unreadable file is skipped; another instance will do
            continue
        if str(ds.get("StudyInstanceUID", "")) == study_uid:
            return ds
    return None


def _enqueue_filing(opinion_id: int) -> None:  # also sharing.sweeper's
    enqueue_after_commit(tasks.file_second_opinion, opinion_id)


def opinion_recipients(link: ShareLink) -> list[str]:
    """Who may manage the link: its creator (still at the trust) and the trust's imaging managers."""
    return perms.emails(perms.share_link_managers(link))


def _notify_opinion(opinion: SecondOpinion) -> None:
    link = opinion.link
    # The email names the link, never the patient: it points staff to the portal page.
    page = settings.SITE_URL + reverse("sharing:detail", kwargs={"pk": link.pk})
    flag = "URGENT " if opinion.urgent else ""
    send_mail(
        subject=f"{flag}Second opinion returned on share link {link.pk}",
        message=render_to_string("sharing/email/opinion.txt", {"opinion": opinion, "link": link, "page": page}),
        from_email=None,
        recipient_list=opinion_recipients(link),
    )


def opinion_file(opinion_id: int) -> str:
    """Store the opinion's SR documents at the source gateway, holding one of its slots. Raises
    GatewayError (see `.permanent`; GatewayBusy while the gateway is full) for the task's retry policy;
    records success, or a failure that no retry can mend."""
    opinion = SecondOpinion.objects.select_related("link__gateway__trust", "link__trust").get(pk=opinion_id)
    if opinion.filing_status == Filing.FILED:
        return Filing.FILED
    paths = sorted(opinion_dir(opinion.pk).glob("*.dcm"))
    if not paths:
        return _filing_failed(opinion, "The SR documents were not found in the spool.")
    SecondOpinion.objects.filter(pk=opinion.pk).update(
        filing_attempts=F("filing_attempts") + 1, filing_started_at=timezone.now()
    )
    store_at_source(opinion.link.gateway, paths, subject=f"second opinion {opinion.pk}")
    with transaction.atomic():
        copies_services.copies_record_files(
            holder=opinion.link.trust,
            gateway=opinion.link.gateway,
            source=opinion.link.trust,
            paths=paths,
            via="sr_filing",
        )
        filed = SecondOpinion.objects.filter(pk=opinion.pk).exclude(filing_status=Filing.FILED)
        if not filed.update(filing_status=Filing.FILED, filed_at=timezone.now(), filing_error=""):
            return Filing.FILED  # a second delivery of the task (sharing.sweeper) filed it meanwhile
        catalogue.SECOND_OPINION_FILED.record(
            actor=system_actor("second opinion filing"),
            trust=opinion.link.trust.ods_code,
            study_uids=list(opinion.sr_uids),
            nhs_number=opinion.link.nhs_number,
            patient_id=opinion.link.patient_id,
            detail={"share_link": opinion.link_id, "opinion": opinion.pk, "gateway": opinion.link.gateway.name},
        )
    # The PACS holds the report now; the spool's copy (patient data) goes. A failed filing keeps it.
    shutil.rmtree(opinion_dir(opinion.pk), ignore_errors=True)
    return Filing.FILED


def opinion_filing_note(opinion_id: int, error: str) -> None:
    """A transient error: the opinion says why it is not filed yet; the task tries again."""
    SecondOpinion.objects.filter(pk=opinion_id).exclude(filing_status=Filing.FILED).update(filing_error=error[:2000])


def opinion_filing_failed(opinion_id: int, reason: str) -> str:
    """Filing gave up (a permanent refusal, or the retry window passed): the reason is on the opinion."""
    return _filing_failed(SecondOpinion.objects.get(pk=opinion_id), reason)


def store_at_source(gateway: Gateway, paths: list[Path], *, subject: str) -> None:
    """Store documents of a link (an opinion's SR, a reviewed write-back) at the link's source gateway (C-STORE
    or STOW-RS, as it is configured), holding one of its slots. Raises GatewayError (see `.permanent`;
    GatewayBusy while the gateway is full) for the task's one retry policy (directory.access.retry_task)."""
    with gateway_access(gateway, work=Work.FILING, subject=subject) as client:
        results = client.store(paths)
    refused = [r for r in results if not r.ok]
    if refused:
        message = "; ".join(f"{r.sop_instance_uid}: {r.message or r.status}" for r in refused)
        raise GatewayError(message, permanent=all(r.permanent for r in refused))


def _filing_failed(opinion: SecondOpinion, reason: str) -> str:
    log.warning("second_opinion_filing_failed", opinion_id=opinion.pk, reason=reason)
    SecondOpinion.objects.filter(pk=opinion.pk).update(filing_status=Filing.FAILED, filing_error=reason[:2000])
    return Filing.FAILED
