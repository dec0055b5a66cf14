"""The read-only FHIR R4 API at /fhir/ (docs/fhir.md): ImagingStudy search and read, the KOS manifest as
Binary. Authorised by an API token (accounts.authentication), scoped by trust (accounts.permissions), every
read on the audit trail. Answers are FHIR JSON (application/fhir+json); errors are OperationOutcomes.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from rest_framework import exceptions, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from accounts.authentication import AuditedTokenAuthentication
from audit import catalogue
from audit.context import actor_from_request

from . import resources
from .models import StudyManifest
from .search import SearchError, manifest_search, parse_search, visible_manifests

DICOM = "application/dicom"


class FHIRRenderer(JSONRenderer):
    media_type, format = resources.FHIR_JSON, "fhir"


def fhir_response(body: dict, status_code: int = 200, **headers: str) -> HttpResponse:
    response = HttpResponse(json.dumps(body), status=status_code, content_type=f"{resources.FHIR_JSON}; charset=utf-8")
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def outcome(status_code: int, code: str, diagnostics: str) -> HttpResponse:
    return fhir_response(resources.operation_outcome(code, diagnostics), status_code)


class FHIRView(APIView):
    """Token-only (a system of the region, not a browser); any Accept gets FHIR JSON, errors included."""

    authentication_classes = [AuditedTokenAuthentication]
    permission_classes = [IsAuthenticated]
    renderer_classes = [FHIRRenderer]
    schema = None  # not in the OpenAPI schema: a FHIR API is described by its CapabilityStatement (docs/fhir.md)

    def perform_content_negotiation(self, request, force=False):
        return FHIRRenderer(), resources.FHIR_JSON

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        issue = {401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported", 429: "throttled"}.get(
            response.status_code, "invalid"
        )
        detail = getattr(exc, "detail", "") if isinstance(exc, exceptions.APIException) else ""
        answer = outcome(response.status_code, issue, str(detail) or "The request was refused.")
        for name in ("WWW-Authenticate", "Retry-After"):
            if name in response:
                answer[name] = response[name]
        return answer


def _disclose(request: HttpRequest, manifests: list[StudyManifest], how: str) -> None:
    """One 110106 Export per study disclosed: the IG officers of the holder and the sender see it, and
    the patient access report finds it by NHS number."""
    actor = actor_from_request(request)
    for manifest in manifests:
        catalogue.MANIFEST_DISCLOSED.record(
            actor=actor,
            trust=manifest.holder.ods_code,
            peer_trust=manifest.sender.ods_code,
            nhs_number=manifest.nhs_number,
            patient_id=manifest.patient_id,
            study_uids=[manifest.study_instance_uid],
            detail={"api": "fhir", "resource": f"ImagingStudy/{manifest.pk}", "as": how},
        )


def _page_url(request: HttpRequest, offset: int) -> str:
    params = request.GET.copy()
    params["_offset"] = str(offset)
    return f"{resources.fhir_base()}/ImagingStudy?{urlencode(sorted(params.items()))}"


class ImagingStudySearchView(FHIRView):
    def get(self, request):
        try:
            search = parse_search(request.GET)
        except SearchError as exc:
            return outcome(
                status.HTTP_400_BAD_REQUEST, "not-supported" if "Unknown" in str(exc) else "invalid", str(exc)
            )
        found, total = manifest_search(user=request.user, search=search)
        next_url = _page_url(request, search.offset + search.count) if search.offset + len(found) < total else ""
        with transaction.atomic():
            catalogue.FHIR_SEARCH.record(
                actor=actor_from_request(request),
                nhs_number=search.nhs_number,
                study_uids=[search.study_uid] if search.study_uid else [],
                detail={"query": search.as_query(), "api": "fhir", "resource": "ImagingStudy", "returned": len(found)},
            )
            _disclose(request, found, "search")
        bundle = resources.searchset(
            [resources.imaging_study(m) for m in found],
            total=total,
            self_url=_page_url(request, search.offset),
            next_url=next_url,
        )
        return fhir_response(bundle)


def _visible_or_404(request, pk: str) -> StudyManifest:
    manifest = visible_manifests(request.user).filter(pk=int(pk)).first() if pk.isdigit() else None
    if manifest is None:
        raise exceptions.NotFound("No such resource, or not one this token may read.")
    return manifest


class ImagingStudyReadView(FHIRView):
    def get(self, request, pk: str):
        manifest = _visible_or_404(request, pk)
        with transaction.atomic():
            _disclose(request, [manifest], "read")
        return fhir_response(resources.imaging_study(manifest))


class BinaryReadView(FHIRView):
    """The KOS manifest: raw DICOM when the client accepts application/dicom, else a FHIR Binary."""

    def get(self, request, pk: str):
        manifest = _visible_or_404(request, pk)
        with transaction.atomic():
            _disclose(request, [manifest], "kos")
        if DICOM in request.headers.get("Accept", ""):
            response = HttpResponse(bytes(manifest.kos), content_type=DICOM)
            response["Content-Disposition"] = f'attachment; filename="manifest-{manifest.pk}.dcm"'
            return response
        return fhir_response(resources.binary(manifest))


class CapabilityView(FHIRView):
    """GET /fhir/metadata: public, as FHIR expects; it says what is served and how to authenticate, no data."""

    authentication_classes: list = []
    permission_classes: list = []

    def get(self, request):
        return fhir_response(resources.capability_statement())


class UnknownView(FHIRView):
    """Any other path under /fhir/: a FHIR 404 (after authentication, so nothing is told to strangers)."""

    def get(self, request):
        return outcome(status.HTTP_404_NOT_FOUND, "not-supported", "Only ImagingStudy and Binary are served here.")
