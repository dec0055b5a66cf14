"""Instances our receiving side refused (truncated, unparseable, inconsistent: dicomkit.validate): failed
at once with the validator's reason, kept in the receiver's quarantine, never passed on."""

from __future__ import annotations

from datetime import datetime

import structlog

from audit.context import system_actor
from dicomkit import QuarantineRecord, RetrieveSummary
from directory.models import Gateway
from exchange import services as exchange_services
from exchange.models import QuarantinedInstance

from ..models import Transfer
from . import ledger
from .plan import Planner

ACTOR = system_actor("transfer worker")
log = structlog.get_logger(__name__)


def after_retrieve(
    transfer: Transfer, planner: Planner | None, study_uid: str, summary: RetrieveSummary | None, since: datetime
) -> int:
    """`record_refused`, once every instance of the study has its ledger row: refusals are matched to
    rows (a refused instance never reached the ledger; the source's listing, asked for when fewer
    arrived than the plan counts, gives it one). Only when something may have been refused: the
    retrieval's own quarantine says so, except with C-MOVE, where the receiver refuses arrivals and
    keeps them in its own."""
    is_move = transfer.source_gateway.retrieve_method == Gateway.RetrieveMethod.C_MOVE
    if planner is not None and (is_move or (summary and summary.quarantined)):
        planner.complete(study_uid)
    return record_refused(transfer, study_uid, summary, since)


def record_refused(transfer: Transfer, study_uid: str, summary: RetrieveSummary | None, since: datetime) -> int:
    """Refused instances are failed now with the validator's reason: the source's copy is damaged, so
    another pass would not help. A refused second copy that differs from one already passed on (a source
    with two objects under one UID) cannot fail that instance: the transfer's errors say so. The refused
    bytes join the receiver's quarantine (C-MOVE arrivals are already there, kept by the receiver since
    `since`). Returns how many instances it failed."""
    source = transfer.source_gateway
    reasons: dict[str, str] = {}
    kept: QuarantineRecord | QuarantinedInstance
    for record in summary.quarantined if summary else ():
        try:
            kept = exchange_services.keep_refused_retrieval(record, source, actor=ACTOR)
        except OSError:
            log.exception("refused_instance_not_kept", transfer_id=transfer.pk, path=str(record.path))
            kept = record
        reasons.setdefault(kept.sop_instance_uid, kept.reason)
    reasons.pop("", None)  # nothing to match a ledger row by: the source did not deliver it, in the end
    if source.retrieve_method == Gateway.RetrieveMethod.C_MOVE:
        refused = QuarantinedInstance.objects.filter(
            received_at__gte=since,
            calling_ae=source.ae_title,
            sop_instance_uid__in=ledger.waiting_uids(transfer, study_uid),
        ).order_by("received_at")
        for uid, reason in refused.values_list("sop_instance_uid", "reason"):
            reasons.setdefault(uid, reason)
    if not reasons:
        return 0
    failed, already_stored = ledger.fail_refused(transfer, reasons)
    for uid in already_stored:
        ledger.add_error(
            transfer,
            study_uid=study_uid,
            error=f"{source.name} sent a second, different copy of instance {uid}: the first was sent on, the "
            f"second kept in quarantine ({reasons[uid]}).",
        )
    return failed
