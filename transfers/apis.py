"""REST endpoints for transfers (SPEC section 7): validate, call a service, shape the answer."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import permissions as perms
from audit.context import actor_from_request
from portal.api import choice_param, run_service

from . import selectors, services
from .models import Status
from .serializers import BulkChangeSerializer, OperationsSerializer, TransferSerializer

DIRECTIONS = ["incoming", "outgoing"]


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("direction", str, enum=DIRECTIONS),
            OpenApiParameter("status", str, description="one status, or several separated by commas"),
        ]
    )
)
class TransferViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Pushes and their progress. Members of the source or destination see a transfer; others get 404."""

    serializer_class = TransferSerializer

    def get_queryset(self):
        return selectors.transfer_list(
            user=self.request.user,
            direction=choice_param(self.request, "direction", DIRECTIONS),
            status=choice_param(self.request, "status", Status.values, several=True),
        )

    def perform_create(self, serializer: TransferSerializer) -> None:
        data = serializer.validated_data
        transfer = run_service(
            services.transfer_create,
            source=data["source"],
            destination=data["destination"],
            study_instance_uids=data["study_instance_uids"],
            priority=data["priority"],
            reason=data["reason"],
            requested_by=self.request.user,
            actor=actor_from_request(self.request),
        )
        serializer.instance = selectors.with_progress(type(transfer).objects.filter(pk=transfer.pk)).get()

    @extend_schema(request=None, responses=TransferSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        return self._change(services.transfer_cancel, request)

    @extend_schema(request=None, responses=TransferSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        return self._change(services.transfer_retry, request)

    def _change(self, service, request: Request) -> Response:
        transfer = self.get_object()
        run_service(service, transfer=transfer, user=request.user, actor=actor_from_request(request))
        fresh = perms.get_visible_or_404(self.get_queryset(), pk=transfer.pk)
        return Response(self.get_serializer(fresh).data, status=status.HTTP_200_OK)

    @extend_schema(request=None, responses=OperationsSerializer)
    @action(detail=False, methods=["get"])
    def operations(self, request: Request) -> Response:
        """For imaging managers: queues per gateway of their trusts, stuck transfers, recent failures."""
        perms.require(perms.may_view_transfer_operations(request.user), "For imaging managers of a trust.")
        ops = selectors.transfer_operations(user=request.user)
        context = self.get_serializer_context()
        return Response(OperationsSerializer(ops, context=context).data)

    @extend_schema(request=BulkChangeSerializer, responses=TransferSerializer(many=True))
    @action(detail=False, methods=["post"])
    def bulk(self, request: Request) -> Response:
        """`{action: cancel|retry, transfers: [id, ...]}`: all or nothing; an ID the user cannot see → 404."""
        body = BulkChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        chosen = selectors.visible_in_order(user=request.user, ids=body.validated_data["transfers"])
        run_service(
            services.transfer_bulk_change,
            action=body.validated_data["action"],
            transfers=chosen,
            user=request.user,
            actor=actor_from_request(request),
        )
        fresh = self.get_queryset().filter(pk__in=[t.pk for t in chosen])
        return Response(self.get_serializer(fresh, many=True).data)
