"""Every workflow's audit event, named once: the event ID, action and type it records and what it must carry.

Workflows call a spec rather than choosing codes themselves, so the trail is consistent and the IG
console's reports and alert rules (audit.alerts) find what they look for:

    from audit import catalogue
    catalogue.STUDY_VIEWED.record(request=request, trust="RXH", nhs_number=nhs, study_uids=[uid])

`record` takes every keyword argument of `audit.services.record_event` and refuses a call missing one
of the spec's `needs`. Conventions the specs encode:

* `trust` is the trust holding the images (a transfer's source, the trust a request asks); `peer_trust`
  the other party (a transfer's destination, the requesting trust).
* Emergency access of any kind (an urgent request auto-approved under an agreement, a break-glass
  override) is 110113 Security Alert with type 110127 Emergency Override Started, reason mandatory.
* A share link's every use passes `audit.context.share_link_actor(...)` as the actor.

Workflows that exist today record themselves: sign-in/out and second-factor events (accounts.receivers),
account and role changes (accounts.services), directory changes (directory.services), admin changes
(audit.admin.AuditedAdminMixin), API token use (accounts.authentication) and the audit console's own use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .codes import Action, EventID, EventType, LocalEventType
from .models import AuditEvent
from .services import record_event


@dataclass(frozen=True)
class EventSpec:
    name: str
    event_id: str
    action: str
    event_type: str = ""
    needs: frozenset[str] = field(default_factory=frozenset)
    description: str = ""

    def record(self, **kwargs: Any) -> AuditEvent:
        missing = sorted(name for name in self.needs if not kwargs.get(name))
        if missing:
            raise ValueError(f"The {self.name} audit event needs {', '.join(missing)}.")
        kwargs.setdefault("action", self.action)
        return record_event(event_id=self.event_id, event_type=self.event_type, **kwargs)


def _spec(name: str, event_id: str, action: str, event_type: str = "", needs: str = "", description: str = ""):
    return EventSpec(name, str(event_id), str(action), str(event_type), frozenset(needs.split()), description)


# --- signing in and machine access ----------------------------------------------------------------
SIGN_IN = _spec("sign-in", EventID.USER_AUTHENTICATION, Action.EXECUTE, EventType.LOGIN)
SIGN_OUT = _spec("sign-out", EventID.USER_AUTHENTICATION, Action.EXECUTE, EventType.LOGOUT)
API_TOKEN_USED = _spec(
    "API token use", EventID.USER_AUTHENTICATION, Action.EXECUTE, LocalEventType.API_TOKEN_USED, "actor"
)

# --- finding and looking at images ----------------------------------------------------------------
STUDY_SEARCH = _spec(
    "study search", EventID.QUERY, Action.EXECUTE, needs="trust", description="detail={'query': {...params}}"
)
STUDY_VIEWED = _spec("study view", EventID.INSTANCES_ACCESSED, Action.READ, needs="trust study_uids")
SERIES_VIEWED = _spec(
    "series view", EventID.INSTANCES_ACCESSED, Action.READ, needs="trust study_uids", description="detail.series_uid"
)

# --- the region's manifests (manifests.fhir_api): a system's FHIR search, and each study it discloses -----
FHIR_SEARCH = _spec(
    "FHIR search", EventID.QUERY, Action.EXECUTE, LocalEventType.FHIR_SEARCH, description="detail={'query': ...}"
)
MANIFEST_DISCLOSED = _spec(
    "manifest disclosed", EventID.EXPORT, Action.READ, LocalEventType.MANIFEST_DISCLOSED, "trust study_uids"
)

# --- moving images between trusts -----------------------------------------------------------------
PUSH_REQUESTED = _spec(
    "push", EventID.BEGIN_TRANSFERRING, Action.EXECUTE, LocalEventType.PUSH, "trust peer_trust study_uids reason"
)
REQUEST_CREATED = _spec(
    "pull request", EventID.QUERY, Action.CREATE, LocalEventType.REQUEST_CREATED, "trust peer_trust nhs_number reason"
)
REQUEST_APPROVED = _spec(
    "request approval",
    EventID.BEGIN_TRANSFERRING,
    Action.EXECUTE,
    LocalEventType.REQUEST_APPROVED,
    "trust peer_trust study_uids",
)
REQUEST_DECLINED = _spec(
    "request decline", EventID.QUERY, Action.UPDATE, LocalEventType.REQUEST_DECLINED, "trust peer_trust reason"
)
REQUEST_ESCALATED = _spec(
    "request escalation",
    EventID.QUERY,
    Action.UPDATE,
    needs="trust peer_trust",
    description="An unanswered request escalated by email to the source trust's approvers.",
)
EMERGENCY_AUTO_APPROVAL = _spec(
    "emergency auto-approval",
    EventID.SECURITY_ALERT,
    Action.EXECUTE,
    EventType.EMERGENCY_OVERRIDE_STARTED,
    "trust peer_trust reason",
    "An urgent or trauma request approved at once under a sharing agreement.",
)
EMERGENCY_OVERRIDE = _spec(
    "emergency override", EventID.SECURITY_ALERT, Action.EXECUTE, EventType.EMERGENCY_OVERRIDE_STARTED, "reason"
)
TRANSFER_STARTED = _spec("transfer start", EventID.BEGIN_TRANSFERRING, Action.EXECUTE, needs="trust peer_trust")
TRANSFER_COMPLETED = _spec(
    "transfer completion",
    EventID.INSTANCES_TRANSFERRED,
    Action.READ,
    needs="trust peer_trust study_uids",
    description="outcome 0, or 4/8 with detail.errors",
)
IMPORTED = _spec("import", EventID.IMPORT, Action.CREATE, needs="trust study_uids")
RECONCILED = _spec("reconciliation", EventID.IMPORT, Action.UPDATE, LocalEventType.RECONCILED, "trust study_uids")
RECONCILIATION_HELD = _spec(
    "reconciliation queue", EventID.IMPORT, Action.CREATE, LocalEventType.RECONCILIATION_HELD, "trust study_uids"
)

RECEIVER_REFUSED = _spec(
    "receiver refusal",
    EventID.SECURITY_ALERT,
    Action.EXECUTE,
    EventType.NODE_AUTHENTICATION,
    needs="actor reason",
    description="The DICOM receiver refused an association from a calling AE title and address not in the "
    "gateway directory (outcome 4); detail.calling_ae, peer, repeats (refusals since the last such event)",
)

# --- external consultants -------------------------------------------------------------------------
SHARE_LINK_CREATED = _spec(
    "share link creation", EventID.EXPORT, Action.CREATE, LocalEventType.SHARE_LINK_CREATED, "trust study_uids reason"
)
SHARE_LINK_OPENED = _spec(
    "share link open", EventID.USER_AUTHENTICATION, Action.EXECUTE, LocalEventType.SHARE_LINK_OPENED, "trust actor"
)
SHARE_LINK_CODE_ATTEMPT = _spec(
    "share link code attempt",
    EventID.USER_AUTHENTICATION,
    Action.EXECUTE,
    EventType.LOGIN,
    "trust actor",
    "outcome 0 for the right code, 4 for a wrong one",
)
SHARE_LINK_VIEWED = _spec("share link view", EventID.INSTANCES_ACCESSED, Action.READ, needs="trust actor study_uids")
SHARE_LINK_REVOKED = _spec(
    "share link revocation", EventID.EXPORT, Action.DELETE, LocalEventType.SHARE_LINK_REVOKED, "trust"
)
SECOND_OPINION = _spec(
    "second opinion", EventID.IMPORT, Action.CREATE, LocalEventType.SECOND_OPINION, "trust study_uids"
)

# The issue for share links (#6) puts every use of a link on the trail as 110103 with the link as the actor,
# and its security events (wrong codes, use after expiry or revocation, unknown tokens) as 110113.
SHARE_LINK_ACCESSED = _spec(
    "share link access",
    EventID.INSTANCES_ACCESSED,
    Action.EXECUTE,
    LocalEventType.SHARE_LINK_OPENED,
    "trust actor study_uids",
    "detail.what: open (token exchanged), code (second factor passed), download, opinion",
)
SHARE_LINK_SECURITY_ALERT = _spec(
    "share link security alert",
    EventID.SECURITY_ALERT,
    Action.EXECUTE,
    EventType.USE_OF_RESTRICTED_FUNCTION,
    "actor",
    "detail.what: wrong code, locked, expired, revoked, unknown token, rate limited",
)

SECOND_OPINION_FILED = _spec(
    "second opinion filing",
    EventID.INSTANCES_TRANSFERRED,
    Action.CREATE,
    LocalEventType.SECOND_OPINION,
    "trust study_uids",
    "the opinion's Basic Text SR stored at the source gateway; detail.share_link, detail.opinion",
)

WRITE_BACK_RECEIVED = _spec(
    "write-back received",
    EventID.IMPORT,
    Action.CREATE,
    LocalEventType.SECOND_OPINION,
    "trust actor",
    "an SR, key object selection or segmentation the consultant's viewer sent by STOW-RS into review "
    "(outcome 0), or refused with its reason (outcome 4, detail.reason); detail.share_link, detail.sop",
)
WRITE_BACK_APPROVED = _spec(
    "write-back approval",
    EventID.IMPORT,
    Action.UPDATE,
    LocalEventType.SECOND_OPINION,
    "trust study_uids",
    "the link's creator (or an imaging manager) asked for a reviewed object to be filed in the source PACS",
)
WRITE_BACK_FILED = _spec(
    "write-back filing",
    EventID.INSTANCES_TRANSFERRED,
    Action.CREATE,
    LocalEventType.SECOND_OPINION,
    "trust study_uids",
    "a reviewed write-back stored at the source gateway; detail.share_link, detail.write_back, detail.approved_by",
)

# --- copies and the corrections that follow them (copies/) ----------------------------------------
COPIES_LISTED = _spec(
    "copies register read",
    EventID.QUERY,
    Action.READ,
    LocalEventType.COPIES_LISTED,
    description="where copies of a study (detail.study) or a patient's images (nhs_number) are held",
)
STUDY_REJECTED = _spec(
    "rejection at the source",
    EventID.INSTANCES_ACCESSED,
    Action.DELETE,
    LocalEventType.STUDY_REJECTED,
    "trust study_uids reason",
    "the source's imaging manager rejected instances, series or a study it sent (IOCM); detail.reason_code, holders",
)
IDENTITY_CORRECTED = _spec(
    "identity correction at the source",
    EventID.PATIENT_RECORD,
    Action.UPDATE,
    LocalEventType.IDENTITY_CORRECTED,
    "trust study_uids",
    "the source's imaging manager corrected the patient identity of a study it sent; detail.corrected, holders",
)
CORRECTION_DELIVERED = _spec(
    "correction delivery",
    EventID.INSTANCES_TRANSFERRED,
    Action.CREATE,
    LocalEventType.CORRECTION_DELIVERED,
    "trust peer_trust study_uids",
    "a rejection note (and corrected instances) stored at a holder's gateway; detail.note, corrected_sent",
)
CORRECTION_ACKNOWLEDGED = _spec(
    "correction acknowledgement",
    EventID.PATIENT_RECORD,
    Action.READ,
    LocalEventType.CORRECTION_ACKNOWLEDGED,
    "trust peer_trust study_uids",
    "an imaging manager of the holder acknowledged a correction received",
)

# --- the audit trail itself -----------------------------------------------------------------------
AUDIT_LOG_READ = _spec("audit log read", EventID.AUDIT_LOG_USED, Action.READ)
AUDIT_LOG_EXPORTED = _spec("audit log export", EventID.EXPORT, Action.READ, description="detail.format, filters")
AUDIT_CHAIN_VERIFIED = _spec(
    "chain verification", EventID.AUDIT_LOG_USED, Action.EXECUTE, LocalEventType.CHAIN_VERIFIED
)
AUDIT_DIGEST_EXPORTED = _spec("digest export", EventID.EXPORT, Action.EXECUTE, LocalEventType.DIGEST_EXPORTED)
AUDIT_ALERT_ACKNOWLEDGED = _spec(
    "alert acknowledgement", EventID.AUDIT_LOG_USED, Action.UPDATE, LocalEventType.ALERT_ACKNOWLEDGED
)

ALL = {value.name: value for value in list(globals().values()) if isinstance(value, EventSpec)}

# What the alert rules read (audit.alerts). A member of staff's access to images their trust does not
# hold (a view, or a transfer they started themselves) must be justified by one of the relationships:
# a push, request, approval, emergency approval, import or share link naming the patient and their trust.
ACCESS_SPECS = (STUDY_VIEWED, SERIES_VIEWED, TRANSFER_STARTED, TRANSFER_COMPLETED)
RELATIONSHIP_SPECS = (
    PUSH_REQUESTED,
    REQUEST_CREATED,
    REQUEST_APPROVED,
    EMERGENCY_AUTO_APPROVAL,
    IMPORTED,
    RECONCILED,
    RECONCILIATION_HELD,
    SHARE_LINK_CREATED,
)
