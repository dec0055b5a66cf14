"""The audit trail's own use, on the audit trail: searches and reports (110101), exports (110106),
verifications. Shared by the API and the console so both record the same thing.
"""

from __future__ import annotations

from django.http import HttpRequest

from audit import catalogue
from audit.context import actor_from_request
from audit.models import AuditEvent
from audit.services import ChainReport

from .selectors import EventFilters


def _about(filters: EventFilters) -> dict:
    """A search about a patient or study is recorded against them: it shows in their access report."""
    return {
        "trust": filters.trust,
        "nhs_number": filters.nhs_number,
        "patient_id": filters.patient_id,
        "study_uids": [filters.study_uid] if filters.study_uid else [],
    }


def record_read(
    request: HttpRequest,
    filters: EventFilters,
    *,
    returned: int,
    report: str = "search",
    event: AuditEvent | None = None,
) -> None:
    about = _about(filters)
    detail: dict = {"report": report, "filters": filters.described(), "returned": returned}
    if event is not None:
        about.update(nhs_number=event.nhs_number, trust="", study_uids=event.study_uids)
        detail["seq"] = event.seq
    catalogue.AUDIT_LOG_READ.record(actor=actor_from_request(request), detail=detail, **about)


def record_export(request: HttpRequest, filters: EventFilters, fmt: str, *, report: str = "search") -> None:
    """An export is both a use of the audit log (110101) and data leaving the portal (110106): both recorded."""
    actor = actor_from_request(request)
    detail = {"report": report, "format": fmt, "filters": filters.described()}
    catalogue.AUDIT_LOG_READ.record(actor=actor, detail={**detail, "exported": True}, **_about(filters))
    catalogue.AUDIT_LOG_EXPORTED.record(actor=actor, detail=detail, **_about(filters))


def run_verification(request: HttpRequest, *, from_seq: int = 1, since_last_digest: bool = False) -> ChainReport:
    """Verify now; a broken chain raises a region-wide alert at once, as well as answering the caller.

    The whole chain by default (about 30,000 events a second); `since_last_digest` walks only what was
    added since the last daily digest. Either way the database is checked against every digest file.
    """
    from audit.digest import record_verification, verify_anchored

    verification = verify_anchored(since_last_digest=since_last_digest, from_seq=from_seq)
    return record_verification(verification, actor=actor_from_request(request))
