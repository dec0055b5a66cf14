"""Gateway configuration: a plain dataclass the Django side fills from its Gateway model."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigurationError

RETRIEVE_METHODS = ("c-get", "c-move", "wado-rs")
STORE_METHODS = ("c-store", "stow-rs")
# What sends C-STOREs: dcmtk's dcmsend as a process (C speed; pynetdicom for what it leaves) or pynetdicom.
STORE_SENDERS = ("dcmsend", "pynetdicom")
QUERY_METHODS = ("c-find", "qido-rs")
DIMSE_METHODS = frozenset({"c-get", "c-move", "c-store", "c-find"})


def ae_title_problem(value: str) -> str | None:
    """Why a value is not a valid AE title (PS3.5 AE VR), or None. Spaces at either end are padding."""
    stripped = (value or "").strip()
    if not stripped:
        return "An AE title needs at least one character."
    if len(stripped) > 16:
        return f"An AE title has at most 16 characters; this one has {len(stripped)}."
    if "\\" in stripped or any(ord(ch) < 32 or ord(ch) == 127 for ch in stripped):
        return "An AE title cannot contain a backslash or control characters."
    if not stripped.isascii():
        return "An AE title uses ASCII characters only."
    return None


def _printable_ascii(value: str, lowest: int = 0x20) -> bool:
    return all(lowest <= ord(ch) <= 0x7E for ch in value)


def credential_problem(kind: str, value: str) -> str | None:
    """Why a DICOMweb credential cannot be sent in an HTTP Authorization header, or None.

    `kind` is "username", "password" or "token". HTTP Basic joins username and password with a colon and
    has no agreed character set beyond ASCII (requests sends Latin-1, many servers read UTF-8); a bearer
    token is a run of visible ASCII characters (RFC 6750's b64token, loosened to any visible character).
    """
    if not value:
        return None
    if kind == "token":
        if not _printable_ascii(value, lowest=0x21):
            return "A bearer token is visible ASCII characters only (no spaces, line breaks or accented letters)."
        return None
    if not _printable_ascii(value):
        return f"A DICOMweb {kind} uses printable ASCII characters only: HTTP Basic authentication cannot carry others."
    if kind == "username" and ":" in value:
        return "A DICOMweb username cannot contain a colon (HTTP Basic authentication separates it from the password)."
    return None


def validate_ae_title(value: str, *, what: str = "AE title") -> str:
    """Return the AE title stripped of padding, or raise ConfigurationError saying why."""
    problem = ae_title_problem(value)
    if problem:
        raise ConfigurationError(f"{what} {value!r} is not valid. {problem}")
    return (value or "").strip()


@dataclass
class GatewayConfig:
    """One trust gateway: DIMSE address and/or DICOMweb base URL, and which method to use for what.

    Timeouts are in seconds. `label` names the gateway in error messages ("trust RXH PACS").
    """

    ae_title: str = ""
    host: str = ""
    port: int = 0
    dicomweb_url: str = ""
    username: str = ""
    password: str = ""
    bearer_token: str = ""
    verify_tls: bool | str = True  # True, False, or a CA bundle path
    retrieve_method: str = "c-get"
    store_method: str = "c-store"
    query_method: str = "c-find"
    label: str = ""
    connect_timeout: float = 5.0
    acse_timeout: float = 10.0
    dimse_timeout: float = 60.0
    network_timeout: float = 120.0
    http_timeout: float = 60.0
    stow_batch_size: int = 50
    store_sender: str = "pynetdicom"

    def __post_init__(self) -> None:
        self.retrieve_method = _choice(self.retrieve_method, RETRIEVE_METHODS, "retrieve method")
        self.store_method = _choice(self.store_method, STORE_METHODS, "store method")
        self.store_sender = _choice(self.store_sender, STORE_SENDERS, "C-STORE sender")
        self.query_method = _choice(self.query_method, QUERY_METHODS, "query method")
        if self.uses_dimse:
            self.ae_title = validate_ae_title(self.ae_title, what="Gateway AE title")
            if not self.host:
                raise ConfigurationError(f"{self.name} uses DIMSE but has no host.")
            if not 0 < int(self.port) < 65536:
                raise ConfigurationError(f"{self.name} has port {self.port}; use 1-65535.")
        if self.uses_dicomweb and not self.dicomweb_url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"{self.name} uses DICOMweb but its base URL {self.dicomweb_url!r} is not http(s)."
            )
        if self.bearer_token and self.username:
            raise ConfigurationError(f"{self.name}: give a bearer token or a username, not both.")
        for kind, value in (("username", self.username), ("password", self.password), ("token", self.bearer_token)):
            problem = credential_problem(kind, value)
            if problem:
                raise ConfigurationError(f"The portal's settings for {self.name} cannot work. {problem}")
        for field in ("connect_timeout", "acse_timeout", "dimse_timeout", "network_timeout", "http_timeout"):
            if getattr(self, field) <= 0:
                raise ConfigurationError(f"{self.name}: {field} must be positive.")

    @property
    def uses_dimse(self) -> bool:
        return bool({self.retrieve_method, self.store_method, self.query_method} & DIMSE_METHODS)

    @property
    def uses_dicomweb(self) -> bool:
        return not {self.retrieve_method, self.store_method, self.query_method} <= DIMSE_METHODS

    @property
    def name(self) -> str:
        """How error messages refer to this gateway."""
        if self.label:
            return self.label
        if self.host:
            return f"gateway {self.host}:{self.port}"
        return f"gateway {self.dicomweb_url}"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __repr__(self) -> str:
        # Never leak credentials into logs or tracebacks.
        return (
            f"GatewayConfig(name={self.name!r}, ae_title={self.ae_title!r}, host={self.host!r}, "
            f"port={self.port}, dicomweb_url={self.dicomweb_url!r}, retrieve={self.retrieve_method}, "
            f"store={self.store_method}, query={self.query_method})"
        )


def _choice(value: str, allowed: tuple[str, ...], what: str) -> str:
    normal = (value or "").strip().lower()
    if normal not in allowed:
        raise ConfigurationError(f"Unknown {what} {value!r}; choose one of {', '.join(allowed)}.")
    return normal
