"""The portal's DICOM layer: gateway clients, receiver, simulated PACS. No Django in here.

Start with `client_for(GatewayConfig(...), local_ae_title=...)` and `StorageReceiver(...)`.
"""

from .admission import AllowList, Caller, Refusal
from .config import GatewayConfig
from .errors import (
    AssociationRejected,
    AuthenticationFailed,
    ConfigurationError,
    GatewayError,
    GatewayTimeout,
    GatewayUnreachable,
    InvalidInstance,
    ProtocolError,
)
from .gateway import GatewayClient, client_for
from .intake import Arrival, Peer
from .models import (
    EchoResult,
    Instance,
    OtherPatientID,
    RetrievedInstance,
    RetrieveSummary,
    Series,
    StoreResult,
    Study,
    StudyQuery,
)
from .moves import MoveDestination
from .quarantine import QuarantineRecord
from .receiver import StorageReceiver
from .retrieval import Retrieval

__all__ = [
    "AllowList",
    "Arrival",
    "AssociationRejected",
    "AuthenticationFailed",
    "Caller",
    "ConfigurationError",
    "EchoResult",
    "GatewayClient",
    "GatewayConfig",
    "GatewayError",
    "GatewayTimeout",
    "GatewayUnreachable",
    "Instance",
    "InvalidInstance",
    "MoveDestination",
    "OtherPatientID",
    "Peer",
    "ProtocolError",
    "QuarantineRecord",
    "Refusal",
    "Retrieval",
    "RetrieveSummary",
    "RetrievedInstance",
    "Series",
    "StorageReceiver",
    "StoreResult",
    "Study",
    "StudyQuery",
    "client_for",
]
