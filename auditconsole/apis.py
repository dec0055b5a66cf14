"""REST endpoints of the audit trail (SPEC section 7): search and export, verification, alerts.

Read-only by construction: no endpoint here changes an event; an alert can only be acknowledged.
Every read is itself recorded (110101 Audit Log Used; an export is 110106 Export).
"""

from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import BasePagination
from rest_framework.permissions import BasePermission
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import permissions as perms
from audit import alerts, exports
from audit.models import AuditAlert

from . import selectors
from .serializers import (
    AcknowledgeSerializer,
    AuditAlertSerializer,
    AuditEventSerializer,
    AuditQuerySerializer,
    VerificationSerializer,
    VerifyRequestSerializer,
)
from .usage import record_export, record_read, run_verification


class CanReadAudit(BasePermission):
    message = "Only IG officers and regional administrators may read the audit trail."

    def has_permission(self, request, view) -> bool:
        return perms.may_view_audit(request.user)


class _ExportRenderer(BaseRenderer):
    """Lets `?format=csv|fhir|dicom` through DRF's content negotiation; the view streams the body itself."""

    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return JSONRenderer().render(data)


class CSVRenderer(_ExportRenderer):
    media_type, format = "text/csv", "csv"


class FHIRRenderer(_ExportRenderer):
    media_type, format = "application/fhir+json", "fhir"


class DICOMAuditRenderer(_ExportRenderer):
    media_type, format = "application/xml", "dicom"


class KeysetPagination(BasePagination):
    """Newest first, `next` carries an opaque cursor; no page numbers and no total (it would cost a count)."""

    def paginate_queryset(self, queryset, request, view=None):
        size = request.query_params.get("page_size", selectors.DEFAULT_PAGE_SIZE)
        if not str(size).isdigit():
            raise serializers.ValidationError({"page_size": "A whole number of events per page."})
        try:
            self.page = selectors.page_of(queryset, cursor=request.query_params.get("cursor"), size=int(size))
        except selectors.BadCursor as exc:
            raise serializers.ValidationError({"cursor": str(exc)}) from exc
        self.request = request
        return self.page.events

    def get_next_link(self) -> str | None:
        if not self.page.next_cursor:
            return None
        from rest_framework.utils.urls import replace_query_param

        return replace_query_param(self.request.build_absolute_uri(), "cursor", self.page.next_cursor)

    def get_paginated_response(self, data):
        return Response({"next": self.get_next_link(), "results": data})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["results"],
            "properties": {"next": {"type": "string", "nullable": True, "format": "uri"}, "results": schema},
        }

    def get_schema_operation_parameters(self, view):
        return [
            {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}},
            {"name": "page_size", "in": "query", "required": False, "schema": {"type": "integer"}},
        ]


SEARCH_PARAMETERS = [
    OpenApiParameter("nhs_number", OpenApiTypes.STR, description="10 digits, spaces allowed"),
    OpenApiParameter("study_instance_uid", OpenApiTypes.STR),
    OpenApiParameter("patient_id", OpenApiTypes.STR, description="local MRN"),
    OpenApiParameter("user", OpenApiTypes.STR, description="email of the member of staff (or share link recipient)"),
    OpenApiParameter("trust", OpenApiTypes.STR, description="ODS code of a trust involved"),
    OpenApiParameter("event_id", OpenApiTypes.STR, description="DCM event ID(s), comma-separated"),
    OpenApiParameter("event_type", OpenApiTypes.STR),
    OpenApiParameter("outcome", OpenApiTypes.INT, enum=[0, 4, 8, 12]),
    OpenApiParameter("actor_type", OpenApiTypes.STR),
    OpenApiParameter("since", OpenApiTypes.STR, description="date or date-time, inclusive"),
    OpenApiParameter("until", OpenApiTypes.STR, description="date (whole day included) or date-time"),
    OpenApiParameter("format", OpenApiTypes.STR, enum=["json", "csv", "fhir", "dicom"]),
]


class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The audit trail: IG officers see their trusts' events, regional administrators everyone's."""

    serializer_class = AuditEventSerializer
    permission_classes = [CanReadAudit]
    pagination_class = KeysetPagination
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, CSVRenderer, FHIRRenderer, DICOMAuditRenderer]
    lookup_field = "seq"
    lookup_value_regex = r"[0-9]+"

    def get_queryset(self):
        return selectors.visible_events(self.request.user)

    def finalize_response(self, request, response, *args, **kwargs):
        # Errors are JSON ({"detail": ...}) whatever export format was asked for.
        if isinstance(response, Response) and response.status_code >= 400:
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), "application/json"
        return super().finalize_response(request, response, *args, **kwargs)

    @extend_schema(parameters=SEARCH_PARAMETERS)
    def list(self, request: Request, *args: object, **kwargs: object):
        query = AuditQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        filters = query.filters()
        events = selectors.search_events(request.user, filters)
        fmt = query.validated_data["format"]
        if fmt in exports.FORMATS:
            record_export(request, filters, fmt)
            content_type, _ = exports.FORMATS[fmt]
            response = StreamingHttpResponse(exports.render(fmt, selectors.iterate(events)), content_type=content_type)
            response["Content-Disposition"] = f'attachment; filename="{exports.filename(fmt)}"'
            return response
        page = self.paginate_queryset(events)
        record_read(request, filters, returned=len(page))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request: Request, *args: object, **kwargs: object):
        event = perms.get_visible_or_404(self.get_queryset(), seq=kwargs["seq"])
        record_read(request, selectors.EventFilters(), returned=1, event=event)
        return Response(self.get_serializer(event).data)

    @extend_schema(request=VerifyRequestSerializer, responses=VerificationSerializer)
    @action(detail=False, methods=["post"])
    def verify(self, request: Request):
        """Walk the hash chain now and report the first broken link.

        The whole chain unless `from_seq` or `since_last_digest` says otherwise; a full walk runs at about
        30,000 events a second, so allow minutes on a chain of millions.
        """
        body = VerifyRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        report = run_verification(request, **body.validated_data)
        return Response(VerificationSerializer(report.as_dict()).data)


class AuditAlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Alerts raised from the audit trail, for the officer's trusts; acknowledging one records who and why."""

    serializer_class = AuditAlertSerializer
    permission_classes = [CanReadAudit]

    def get_queryset(self):
        status = self.request.query_params.get("status", "")
        kind = self.request.query_params.get("kind", "")
        return selectors.alerts_for(self.request.user, status=status, kind=kind)

    @extend_schema(request=AcknowledgeSerializer, responses=AuditAlertSerializer)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk: str | None = None):
        alert: AuditAlert = self.get_object()
        perms.require(perms.may_acknowledge_alert(request.user, alert), "Only the trust's IG officers acknowledge it.")
        body = AcknowledgeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        from audit.context import actor_from_request

        alerts.acknowledge(
            alert=alert, user=request.user, note=body.validated_data["note"], actor=actor_from_request(request)
        )
        return Response(self.get_serializer(alert).data)
