"""Study search API (SPEC section 7): validate, check the trust, call the service, shape the JSON."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import permissions as perms
from accounts.permissions import Perm
from audit.context import actor_from_request
from directory import apis as directory_apis
from directory.models import Trust

from . import services
from .forms import CRITERIA, StudySearchForm


def trust_for_study_search(user, ods_code: str) -> Trust:
    """The trust if the user may search its PACS: not a member → 404; a member without the role → 403."""
    trust = perms.get_visible_or_404(Trust.objects.filter(pk__in=perms.member_trust_ids(user)), ods_code=ods_code)
    perms.require(perms.may_search_studies(user, trust.pk), f"Your role at {trust.ods_code} cannot search its PACS.")
    return trust


def _unavailable(exc: Exception) -> Response:
    return Response({"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)


_STUDY_FIELDS = {
    "study_instance_uid": serializers.CharField(),
    "patient_name": serializers.CharField(),
    "patient_id": serializers.CharField(),
    "nhs_number": serializers.CharField(allow_null=True),
    "birth_date": serializers.DateField(allow_null=True),
    "sex": serializers.CharField(),
    "study_date": serializers.DateField(allow_null=True),
    "modalities": serializers.ListField(child=serializers.CharField()),
    "description": serializers.CharField(),
    "accession_number": serializers.CharField(),
    "series_count": serializers.IntegerField(allow_null=True),
    "instance_count": serializers.IntegerField(allow_null=True),
}
StudyListSerializer = inline_serializer("Study", _STUDY_FIELDS, many=True)
SeriesListSerializer = inline_serializer(
    "Series",
    {
        "series_instance_uid": serializers.CharField(),
        "modality": serializers.CharField(),
        "series_number": serializers.IntegerField(allow_null=True),
        "description": serializers.CharField(),
        "instance_count": serializers.IntegerField(allow_null=True),
    },
    many=True,
)
StudyDetailSerializer = inline_serializer("StudyDetail", {**_STUDY_FIELDS, "series": SeriesListSerializer})
_DATE_PARAMS = {"birth_date", "study_date_from", "study_date_to"}
# The trust's PACS could not be asked (down, unreachable, or its gateway's settings cannot work).
GatewayUnavailableSerializer = inline_serializer("GatewayUnavailable", {"detail": serializers.CharField()})


class StudyListView(APIView):
    """Live query of the trust's PACS. Every query is on the audit trail (110112)."""

    pagination_class = PageNumberPagination

    @extend_schema(
        parameters=[
            OpenApiParameter(name, OpenApiTypes.DATE if name in _DATE_PARAMS else OpenApiTypes.STR) for name in CRITERIA
        ],
        responses={200: StudyListSerializer, 503: GatewayUnavailableSerializer},
    )
    def get(self, request: Request, ods_code: str) -> Response:
        trust = trust_for_study_search(request.user, ods_code)
        form = StudySearchForm({name: request.query_params.get(name, "") for name in CRITERIA})
        if not form.is_valid():
            errors = {("detail" if k == "__all__" else k): v for k, v in form.errors.items()}
            if list(errors) == ["detail"]:
                errors["detail"] = errors["detail"][0]
            return Response(errors, status=status.HTTP_400_BAD_REQUEST)
        try:
            rows = services.study_search(trust=trust, criteria=form.cleaned_data, actor=actor_from_request(request))
        except services.GatewayUnavailable as exc:
            return _unavailable(exc)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset([row.as_json() for row in rows], request, view=self)
        return paginator.get_paginated_response(page)


class StudyDetailView(APIView):
    """A study's series with instance counts; viewing it is on the audit trail (110103)."""

    @extend_schema(responses={200: StudyDetailSerializer, 503: GatewayUnavailableSerializer})
    def get(self, request: Request, ods_code: str, study_uid: str) -> Response:
        trust = trust_for_study_search(request.user, ods_code)
        try:
            row, series = services.study_detail(trust=trust, study_uid=study_uid, actor=actor_from_request(request))
        except services.StudyNotFound as exc:
            raise Http404("No such study in this trust's PACS.") from exc
        except services.GatewayUnavailable as exc:
            return _unavailable(exc)
        return Response({**row.as_json(), "series": [services.series_json(s) for s in series]})


class GatewayViewSet(directory_apis.GatewayViewSet):
    """directory's gateway endpoints, with the live echo: directory keeps gateways' records, exchange talks
    to them (docs/architecture.md)."""

    @extend_schema(
        request=None,
        responses=inline_serializer(
            "EchoResult",
            {
                "ok": serializers.BooleanField(),
                "latency_ms": serializers.FloatField(allow_null=True),
                "error": serializers.CharField(),
            },
        ),
    )
    @action(detail=True, methods=["post"])
    def echo(self, request: Request, pk: str | None = None) -> Response:
        """C-ECHO (or QIDO-RS ping) now; the result is stored as the gateway's health."""
        gateway = self.get_object()
        perms.require(perms.has_perm_at(request.user, Perm.CHANGE_GATEWAY, gateway.trust_id))
        result = services.gateway_echo(gateway=gateway)
        return Response({"ok": result.ok, "latency_ms": result.latency_ms, "error": result.error})
