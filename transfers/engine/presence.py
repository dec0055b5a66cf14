"""What the destination already holds of a study, learned before anything is sent: one study-level
query (answered from the destination's index) says whether it holds any of it; only when it does are
its instances (and the source's) listed, and those it holds recorded `already_present`, never sent."""

from __future__ import annotations

from functools import partial

import structlog

from dicomkit import GatewayClient, GatewayError, StudyQuery

from .lease import Lease
from .plan import Planner

log = structlog.get_logger(__name__)


def learn_present(planner: Planner, destination: GatewayClient, lease: Lease, study_uid: str) -> int:
    """Record what of the study the destination holds; returns how many of the study's instances that is.
    A destination that does not answer the query is sent everything: its answers to the stores (a
    duplicate answer counts as present) then decide, and its errors are the transfer's."""
    try:
        held = lease.wait(partial(destination.find_studies, StudyQuery(study_instance_uid=study_uid, limit=1)))
    except GatewayError:
        log.info("destination_not_asked_what_it_holds", study=study_uid, exc_info=True)
        return 0
    if not held or held[0].instance_count == 0:
        return 0
    at_destination = lease.wait(partial(destination.find_instance_uids, study_uid))
    if not at_destination:
        return 0
    planner.list_instances(study_uid, present=at_destination)
    return len(at_destination)
