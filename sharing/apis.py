"""REST endpoints for share links (SPEC section 7): validate, call a service, shape the answer."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from audit.context import actor_from_request
from portal.api import run_service

from . import selectors, services
from .serializers import (
    SecondOpinionSerializer,
    ShareLinkAccessSerializer,
    ShareLinkCreatedSerializer,
    ShareLinkCreateSerializer,
    ShareLinkSerializer,
)


class ShareLinkViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Links for external consultants. The creator and the trust's imaging managers see a link; others 404."""

    serializer_class = ShareLinkSerializer

    def get_queryset(self):
        return selectors.share_link_list(user=self.request.user)

    @extend_schema(request=ShareLinkCreateSerializer, responses={201: ShareLinkCreatedSerializer})
    def create(self, request: Request) -> Response:
        incoming = ShareLinkCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        link, url = run_service(
            services.share_link_create,
            created_by=request.user,
            actor=actor_from_request(request),
            **incoming.validated_data,
        )
        link.url = url
        response = Response(ShareLinkCreatedSerializer(link).data, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"  # the body holds the token
        return response

    @extend_schema(request=None, responses=ShareLinkSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        link = self.get_object()
        link = run_service(services.share_link_revoke, link=link, user=request.user, actor=actor_from_request(request))
        return Response(ShareLinkSerializer(link).data)

    @extend_schema(responses=ShareLinkAccessSerializer(many=True))
    @action(detail=True, methods=["get"])
    def accesses(self, request: Request, pk: str | None = None) -> Response:
        """Every use of the link, from the audit trail: when, from which address, what."""
        link = self.get_object()
        return Response(ShareLinkAccessSerializer(selectors.share_link_accesses(link), many=True).data)

    @extend_schema(responses=SecondOpinionSerializer(many=True))
    @action(detail=True, methods=["get"])
    def opinions(self, request: Request, pk: str | None = None) -> Response:
        link = self.get_object()
        return Response(SecondOpinionSerializer(link.opinions.all(), many=True).data)
