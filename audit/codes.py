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
    QUERY = "110112", "Query"
    SECURITY_ALERT = "110113", "Security Alert"
    USER_AUTHENTICATION = "110114", "User Authentication"


class EventType(models.TextChoices):
    """EventTypeCode values (DCM) that refine an EventID."""

    APPLICATION_START = "110120", "Application Start"
    LOGIN = "110122", "Login"
    LOGOUT = "110123", "Logout"
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
