"""REST endpoints for the reconciliation queue (SPEC section 7): list, and resolve with the local patient."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import permissions as perms
from audit.context import actor_from_request
from portal.api import run_service

from . import selectors, services
from .serializers import ReconciliationSerializer, ResolveSerializer


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter(
                "outcome", str, description="held (default), resolved, matched, unchanged; several with commas"
            )
        ]
    )
)
class ReconciliationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Arrivals that did not match a local patient: the receiving trust's imaging managers only."""

    serializer_class = ReconciliationSerializer

    def get_queryset(self):
        outcome = self.request.query_params.get("outcome", "held") if self.action == "list" else ""
        return selectors.reconciliation_list(user=self.request.user, outcome=outcome)

    @extend_schema(request=ResolveSerializer, responses=ReconciliationSerializer)
    @action(detail=True, methods=["post"])
    def resolve(self, request: Request, pk: str | None = None) -> Response:
        item = self.get_object()
        body = ResolveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        run_service(
            services.reconciliation_resolve,
            item=item,
            user=request.user,
            actor=actor_from_request(request),
            **body.validated_data,
        )
        fresh = perms.get_visible_or_404(self.get_queryset(), pk=item.pk)
        return Response(self.get_serializer(fresh).data, status=status.HTTP_200_OK)
