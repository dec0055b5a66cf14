"""REST endpoints for requests (SPEC section 7): validate, call a service, shape the answer."""

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
from .models import RequestStatus
from .serializers import ApproveSerializer, DeclineSerializer, RequestSerializer

DIRECTIONS = ["incoming", "outgoing"]


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("direction", str, enum=DIRECTIONS),
            OpenApiParameter("status", str, description="one status, or several separated by commas"),
        ]
    )
)
class RequestViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Pulls. Members of the requesting or the source trust see a request; others get 404."""

    serializer_class = RequestSerializer

    def get_queryset(self):
        return selectors.request_list(
            user=self.request.user,
            direction=choice_param(self.request, "direction", DIRECTIONS),
            status=choice_param(self.request, "status", RequestStatus.values, several=True),
        )

    def perform_create(self, serializer: RequestSerializer) -> None:
        data = dict(serializer.validated_data)
        serializer.instance = run_service(
            services.request_create,
            requesting_trust=data.pop("requesting_trust", None),
            source_trust=data.pop("source_trust"),
            requested_by=self.request.user,
            actor=actor_from_request(self.request),
            **data,
        )

    @extend_schema(request=ApproveSerializer, responses=RequestSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        body = ApproveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self._decide(
            request, services.request_approve, study_instance_uids=body.validated_data.get("study_instance_uids")
        )

    @extend_schema(request=DeclineSerializer, responses=RequestSerializer)
    @action(detail=True, methods=["post"])
    def decline(self, request: Request, pk: str | None = None) -> Response:
        body = DeclineSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self._decide(request, services.request_decline, reason=body.validated_data["reason"])

    @extend_schema(request=None, responses=RequestSerializer)
    @action(detail=True, methods=["post"], url_path="search-again")
    def search_again(self, request: Request, pk: str | None = None) -> Response:
        """Query the source trust's PACS again for a pending request's candidate studies."""
        return self._decide(request, services.request_search_again)

    def _decide(self, request: Request, service, **kwargs) -> Response:
        pull = self.get_object()
        run_service(service, request=pull, user=request.user, actor=actor_from_request(request), **kwargs)
        fresh = perms.get_visible_or_404(self.get_queryset(), pk=pull.pk)
        return Response(self.get_serializer(fresh).data, status=status.HTTP_200_OK)
