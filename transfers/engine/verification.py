"""Proof of delivery. Each instance's proof is the destination's own answer to sending it (a C-STORE
success or warning status, or the STOW-RS answer naming it in ReferencedSOPSequence), recorded by the
ledger as it comes back. After the last instance, one cheap look at the destination's index catches a
PACS that answers Success and then loses the image: its series-level counts
(NumberOfSeriesRelatedInstances, answered from the index) must show at least what the ledger says it
holds; only a series that falls short is listed instance by instance, and what it does not list fails."""

from __future__ import annotations

from functools import partial

import structlog

from dicomkit import GatewayClient

from ..models import Transfer
from . import ledger
from .lease import Lease

log = structlog.get_logger(__name__)


def verify(transfer: Transfer, destination: GatewayClient, lease: Lease) -> None:
    """The count check, a study at a time (each look-up renewing the lease while it runs)."""
    for study_uid in transfer.study_instance_uids:
        expected = ledger.delivered_by_series(transfer, study_uid)
        if not expected:
            continue
        counted = {
            s.series_instance_uid: s.instance_count for s in lease.wait(partial(destination.find_series, study_uid))
        }
        # A series the destination does not count (no NumberOfSeriesRelatedInstances) is listed too.
        short = [uid for uid, n in expected.items() if (counted.get(uid) or 0) < n]
        if not short:
            continue
        log.info("verification_shortfall", transfer_id=transfer.pk, study=study_uid, series=len(short))
        for series_uid in short:
            listed = lease.wait(partial(destination.find_instances, study_uid, series_uid or None))
            missing = ledger.delivered_uids(transfer, study_uid, series_uid) - {i.sop_instance_uid for i in listed}
            if missing:
                ledger.fail_unlisted(transfer, missing, destination.config.name)
