"""The FHIR search parameters the portal answers for ImagingStudy, and the search itself, scoped to what
the caller may see (accounts.permissions.visible_manifests)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings
from django.db.models import QuerySet
from django.http import QueryDict

from accounts import permissions as perms
from audit.exports import DICOM_UID_SYSTEM, NHS_NUMBER_SYSTEM
from dicomkit import nhs

from .models import StudyManifest

PARAMETERS = ("patient.identifier", "identifier", "_count", "_offset", "_format")
FORMATS = ("json", "application/json", "application/fhir+json", "application/json+fhir")
UID = re.compile(r"[0-9]+(\.[0-9]+)*")
DEFAULT_COUNT = 50


class SearchError(ValueError):
    """A search the portal does not answer: the message says why (an OperationOutcome, 400)."""


@dataclass(frozen=True)
class ImagingStudySearch:
    nhs_number: str = ""
    study_uid: str = ""
    count: int = DEFAULT_COUNT
    offset: int = 0

    def as_query(self) -> dict[str, str]:
        """What was asked, for the audit trail."""
        asked = {"nhs_number": self.nhs_number, "study_instance_uid": self.study_uid}
        return {key: value for key, value in asked.items() if value}


def _token(value: str, system: str, name: str) -> str:
    """The value of a FHIR token `[system|]value`, whose system (if given) must be `system`."""
    if "|" in value:
        given, value = value.split("|", 1)
        if given and given != system:
            raise SearchError(f"{name}: only the system {system} is supported.")
    return value


def _number(params: QueryDict, name: str, default: int, maximum: int) -> int:
    text = params.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) > maximum:
        raise SearchError(f"{name} must be a whole number from 0 to {maximum}.")
    return int(text)


def parse_search(params: QueryDict) -> ImagingStudySearch:
    """Check every parameter; an unknown one, or one given twice, is an error rather than ignored (a
    search that silently dropped a criterion would disclose more than was asked for)."""
    for name in params:
        if name not in PARAMETERS:
            raise SearchError(f"Unknown search parameter {name!r}; supported: {', '.join(PARAMETERS)}.")
        if len(params.getlist(name)) > 1:
            raise SearchError(f"The search parameter {name!r} may be given once.")
    # An unencoded "+" in a query string arrives as a space ("application/fhir json").
    if params.get("_format", "json").replace(" ", "+") not in FORMATS:
        raise SearchError("_format: only JSON (application/fhir+json) is supported.")
    nhs_number = _token(params.get("patient.identifier", ""), NHS_NUMBER_SYSTEM, "patient.identifier")
    study_uid = _token(params.get("identifier", ""), DICOM_UID_SYSTEM, "identifier").removeprefix("urn:oid:")
    if "patient.identifier" in params and not nhs.is_valid(nhs_number):
        raise SearchError("patient.identifier must be a valid NHS number (10 digits, modulus 11).")
    if "identifier" in params and not (UID.fullmatch(study_uid) and len(study_uid) <= 64):
        raise SearchError("identifier must be a Study Instance UID (urn:dicom:uid|urn:oid:1.2.3 or 1.2.3).")
    if not nhs_number and not study_uid:
        raise SearchError("A search needs patient.identifier (NHS number) or identifier (Study Instance UID).")
    count = _number(params, "_count", min(DEFAULT_COUNT, settings.FHIR_MAX_COUNT), settings.FHIR_MAX_COUNT)
    return ImagingStudySearch(
        nhs_number=nhs.normalise(nhs_number) if nhs_number else "",
        study_uid=study_uid,
        count=count,
        offset=_number(params, "_offset", 0, 10**6),
    )


def visible_manifests(user) -> QuerySet[StudyManifest]:
    return perms.visible_manifests(user, StudyManifest.objects.select_related("holder", "sender"))


def manifest_search(*, user, search: ImagingStudySearch) -> tuple[list[StudyManifest], int]:
    """A page of the manifests the user may see that match, and how many match in all."""
    queryset = visible_manifests(user)
    if search.nhs_number:
        queryset = queryset.filter(nhs_number=search.nhs_number)
    if search.study_uid:
        queryset = queryset.filter(study_instance_uid=search.study_uid)
    queryset = queryset.order_by("-created_at", "-pk")
    return list(queryset[search.offset : search.offset + search.count]), queryset.count()
