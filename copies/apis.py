"""REST endpoints (added to SPEC section 7's contract, nothing changed there): the register of copies,
corrections and their acknowledgement, and a receiving trust's procedure code mapping."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import permissions as perms
from audit.context import actor_from_request
from directory.models import Trust
from portal.api import run_service

from . import coercion, selectors, services
from .models import CorrectionDelivery
from .serializers import (
    CorrectionCreateSerializer,
    CorrectionSerializer,
    HoldingListSerializer,
    MappingSerializer,
    MappingTableSerializer,
    MappingUploadedSerializer,
    MappingUploadSerializer,
    UnmappedSerializer,
)


class CopiesView(APIView):
    """Where copies are: of a study (`study_instance_uid`) or of a patient's images (`nhs_number`)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("study_instance_uid", str),
            OpenApiParameter("nhs_number", str),
            OpenApiParameter("holder", str, description="ODS code of the holding trust"),
        ],
        responses=HoldingListSerializer,
    )
    def get(self, request: Request) -> Response:
        perms.require(selectors.may_see_copies(request.user), "Imaging managers and IG officers read the register.")
        params = request.query_params
        found = run_service(
            services.copies_read,
            user=request.user,
            request=request._request,
            study_instance_uid=params.get("study_instance_uid", "").strip()[:64],
            nhs_number=params.get("nhs_number", "").replace(" ", "")[:10],
            holder=params.get("holder", "").strip()[:5],
        )
        return Response({"count": len(found), "results": [h.as_json() for h in found]})


class CorrectionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Corrections a source made (IOCM rejection notes, identity corrections) and their delivery to holders."""

    serializer_class = CorrectionSerializer

    def get_queryset(self):
        queryset = selectors.visible_corrections(self.request.user)
        study = self.request.query_params.get("study_instance_uid", "")
        return queryset.filter(study_instance_uid=study) if study else queryset

    @extend_schema(request=CorrectionCreateSerializer, responses=CorrectionSerializer)
    def create(self, request: Request) -> Response:
        body = CorrectionCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        source = data.pop("source_trust")
        correction = run_service(
            services.correction_create, user=request.user, source=source, actor=actor_from_request(request), **data
        )
        return Response(self.get_serializer(correction).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=CorrectionSerializer)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk: str | None = None) -> Response:
        """An imaging manager of a holder acknowledges the correction for their trust(s)."""
        correction = self.get_object()
        mine = selectors.received_deliveries(request.user).filter(correction=correction)
        perms.require(mine.exists(), "Only imaging managers of a trust the correction was sent to acknowledge it.")
        for delivery in mine:
            run_service(
                services.correction_acknowledge, user=request.user, delivery=delivery, actor=actor_from_request(request)
            )
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(request=None, responses=CorrectionSerializer)
    @action(detail=True, methods=["post"])
    def resend(self, request: Request, pk: str | None = None) -> Response:
        """The source's imaging manager sends failed deliveries again."""
        correction = self.get_object()
        failed = CorrectionDelivery.objects.filter(correction=correction, state="failed")
        for delivery in failed:
            run_service(services.correction_resend, user=request.user, delivery=delivery)
        return Response(self.get_serializer(self.get_object()).data)


class MappingView(APIView):
    """A receiving trust's procedure code mapping: GET the rows and the unmapped arrivals; POST a CSV
    (multipart `file`) to replace the table, all or nothing, problems named with their line."""

    parser_classes = [MultiPartParser, FormParser]

    def _trust(self, request: Request, ods_code: str) -> Trust:
        trust = get_object_or_404(Trust, ods_code=ods_code)
        perms.require(
            perms.has_perm_at(request.user, perms.Perm.CHANGE_RECONCILIATION_SETTINGS, trust.pk),
            f"Only imaging managers of {trust.ods_code} manage its procedure code mapping.",
        )
        return trust

    @extend_schema(responses=MappingTableSerializer)
    def get(self, request: Request, ods_code: str) -> Response:
        trust = self._trust(request, ods_code)
        return Response(
            {
                "trust": trust.ods_code,
                "mappings": MappingSerializer(selectors.mapping_rows(trust.pk), many=True).data,
                "unmapped": UnmappedSerializer(selectors.unmapped(trust.pk), many=True).data,
            }
        )

    @extend_schema(request=MappingUploadSerializer, responses=MappingUploadedSerializer)
    def post(self, request: Request, ods_code: str) -> Response:
        trust = self._trust(request, ods_code)
        upload = request.FILES.get("file")
        if upload is None:
            return Response({"file": ["Attach the CSV as `file`."]}, status=status.HTTP_400_BAD_REQUEST)
        count = run_service(
            coercion.mappings_upload, user=request.user, trust=trust, data=upload.read(coercion.MAX_UPLOAD + 1)
        )
        return Response({"trust": trust.ods_code, "rows": count}, status=status.HTTP_200_OK)
