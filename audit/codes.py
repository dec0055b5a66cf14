"""DICOM PS3.15 Annex A.5 audit vocabulary (SPEC section 4): event IDs, type codes, actions, outcomes."""

from django.db import models


class EventID(models.TextChoices):
    APPLICATION_ACTIVITY = "110100", "Application Activity"
    AUDIT_LOG_USED = "110101", "Audit Log Used"
    BEGIN_TRANSFERRING = "110102", "Begin Transferring DICOM Instances"
    INSTANCES_ACCESSED = "110103", "DICOM Instances Accessed"
    INSTANCES_TRANSFERRED = "110104", "DICOM Instances Transferred"
    EXPORT = "110106", "Export"
    IMPORT = "110107", "Import"
    PATIENT_RECORD = "110110", "Patient Record"
    QUERY = "110112", "Query"
    SECURITY_ALERT = "110113", "Security Alert"
    USER_AUTHENTICATION = "110114", "User Authentication"


class EventType(models.TextChoices):
    """EventTypeCode values (DCM) that refine an EventID."""

    APPLICATION_START = "110120", "Application Start"
    LOGIN = "110122", "Login"
    LOGOUT = "110123", "Logout"
    NODE_AUTHENTICATION = "110126", "Node Authentication"
    EMERGENCY_OVERRIDE_STARTED = "110127", "Emergency Override Started"
    NETWORK_CONFIGURATION = "110128", "Network Configuration"
    SECURITY_CONFIGURATION = "110129", "Security Configuration"
    USE_OF_RESTRICTED_FUNCTION = "110132", "Use of Restricted Function"
    SECURITY_ROLES_CHANGED = "110136", "Security Roles Changed"
    USER_SECURITY_ATTRIBUTES_CHANGED = "110137", "User Security Attributes Changed"


class Action(models.TextChoices):
    CREATE = "C", "Create"
    READ = "R", "Read"
    UPDATE = "U", "Update"
    DELETE = "D", "Delete"
    EXECUTE = "E", "Execute"


class Outcome(models.IntegerChoices):
    SUCCESS = 0, "Success"
    MINOR_FAILURE = 4, "Minor failure"
    SERIOUS_FAILURE = 8, "Serious failure"
    MAJOR_FAILURE = 12, "Major failure"


class ActorType(models.TextChoices):
    USER = "user", "Staff user"
    API_TOKEN = "token", "API token"
    SHARE_LINK = "share_link", "Share link"
    SYSTEM = "system", "System"
    ANONYMOUS = "anonymous", "Unauthenticated"


class LocalEventType(models.TextChoices):
    """The portal's own EventTypeCodes (coding scheme `IEP`), for workflows PS3.15 has no code for.

    They refine a standard EventID (SPEC section 4), never replace it: a push is still 110102 Begin
    Transferring DICOM Instances; IEP101 says it was a push rather than an approved request.
    """

    PUSH = "IEP101", "Push requested"
    REQUEST_CREATED = "IEP111", "Images requested (pull)"
    REQUEST_APPROVED = "IEP112", "Request approved"
    REQUEST_DECLINED = "IEP113", "Request declined"
    RECONCILED = "IEP121", "Arrival reconciled to a local patient"
    RECONCILIATION_HELD = "IEP122", "Arrival held for reconciliation"
    SHARE_LINK_CREATED = "IEP131", "Share link created"
    SHARE_LINK_OPENED = "IEP132", "Share link opened"
    SHARE_LINK_REVOKED = "IEP134", "Share link revoked"
    SECOND_OPINION = "IEP141", "Second opinion returned"
    API_TOKEN_USED = "IEP151", "API token used"
    CHAIN_VERIFIED = "IEP161", "Audit chain verified"
    DIGEST_EXPORTED = "IEP162", "Audit chain digest exported"
    ALERT_ACKNOWLEDGED = "IEP163", "Audit alert acknowledged"
    FHIR_SEARCH = "IEP171", "FHIR search"
    MANIFEST_DISCLOSED = "IEP172", "Study manifest disclosed (FHIR)"
    STUDY_REJECTED = "IEP181", "Instances rejected at the source"
    IDENTITY_CORRECTED = "IEP182", "Patient identity corrected at the source"
    CORRECTION_DELIVERED = "IEP183", "Correction sent to a holder of copies"
    CORRECTION_ACKNOWLEDGED = "IEP184", "Correction acknowledged by a holder"
    COPIES_LISTED = "IEP185", "Register of copies read"


class AlertStatus(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"


DCM = "DCM"
LOCAL_SCHEME = "IEP"
DCM_SYSTEM = "http://dicom.nema.org/resources/ontology/DCM"

_DISPLAY = {**dict(EventID.choices), **dict(EventType.choices), **dict(LocalEventType.choices)}


def display(code: str) -> str:
    """The code meaning of an event ID or event type code, DICOM or local; the code itself if unknown."""
    return _DISPLAY.get(code, code)


def scheme(code: str) -> str:
    """Coding scheme designator of a code: DCM for PS3.15's, IEP for the portal's own."""
    return LOCAL_SCHEME if code.startswith(LOCAL_SCHEME) else DCM
