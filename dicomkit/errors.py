"""Errors the gateway clients raise, each with a message a person can act on.

`permanent` tells a retrying caller (a Celery task) whether trying again later can help: a wrong
AE title or rejected credentials will not fix themselves; a timeout or a refused connection may.
"""

from __future__ import annotations


class GatewayError(Exception):
    """A gateway operation failed; `str(err)` is readable by an imaging manager."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent

    def __str__(self) -> str:
        return self.message


class GatewayUnreachable(GatewayError):
    """No transport connection: refused, unresolvable, or no answer within the timeout."""


class GatewayTimeout(GatewayError):
    """The peer stopped answering in the middle of an exchange."""


class AssociationRejected(GatewayError):
    """The peer refused the DICOM association (AE titles, contexts, congestion)."""


class AuthenticationFailed(GatewayError):
    """The DICOMweb server rejected the credentials."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


class ProtocolError(GatewayError):
    """The peer answered with something the standard does not allow, or a failure status."""


class ConfigurationError(GatewayError):
    """The gateway configuration cannot work (missing host, unknown method...)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


class InvalidInstance(Exception):
    """A received or supplied instance fails validation; carries the DICOM status to answer with."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
