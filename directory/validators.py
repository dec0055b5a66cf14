"""Field and cross-field rules for trusts and gateways: used by the models, forms and API alike."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

from dicomkit.config import ae_title_problem, credential_problem

validate_ods_code = RegexValidator(
    r"^[A-Z0-9]{3,5}\Z",
    "An ODS code is 3 to 5 upper-case letters or digits, e.g. RXH.",
    code="invalid_ods_code",
)


def validate_ae_title(value: str) -> None:
    """PS3.5: 1-16 characters of the default repertoire, no backslash or control characters."""
    problem = ae_title_problem(value)
    if problem:
        raise ValidationError(problem, code="invalid_ae_title")


def _check_credential(kind: str, value: str) -> None:
    problem = credential_problem(kind, value)
    if problem:
        raise ValidationError(problem, code=f"invalid_dicomweb_{kind}")


# Where credentials are entered (form, API, admin): one that cannot go in an HTTP header is refused here,
# not discovered at the next search as an error that looks like the PACS's.
def validate_dicomweb_username(value: str) -> None:
    _check_credential("username", value)


def validate_dicomweb_password(value: str) -> None:
    _check_credential("password", value)


def validate_dicomweb_token(value: str) -> None:
    _check_credential("token", value)


def validate_port(value: int) -> None:
    if not 1 <= value <= 65535:
        raise ValidationError(f"A port is between 1 and 65535, not {value}.", code="port_range")


DICOMWEB_METHODS = {"retrieve_method": "wado-rs", "store_method": "stow-rs", "query_method": "qido-rs"}
DIMSE_METHODS = {"retrieve_method": ("c-get", "c-move"), "store_method": ("c-store",), "query_method": ("c-find",)}


def gateway_consistency_errors(values: Mapping[str, Any]) -> dict[str, str]:
    """Which fields a gateway's chosen methods need but lack: DIMSE needs AE/host/port, DICOMweb a URL."""
    errors: dict[str, str] = {}
    uses_web = any(values.get(field) == method for field, method in DICOMWEB_METHODS.items())
    uses_dimse = any(values.get(field) in methods for field, methods in DIMSE_METHODS.items())
    if uses_web and not values.get("dicomweb_url"):
        errors["dicomweb_url"] = "WADO-RS, STOW-RS and QIDO-RS need the gateway's DICOMweb base URL."
    if uses_dimse:
        for field, label in (("ae_title", "an AE title"), ("host", "a host"), ("port", "a port")):
            if not values.get(field):
                errors[field] = f"C-FIND, C-GET, C-MOVE and C-STORE need {label}."
    return errors
