"""REST endpoints for the signed-in user, staff accounts and memberships."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from audit.context import actor_from_request
from portal.api import run_service

from . import permissions as perms
from . import services
from .models import Membership, User
from .permissions import Perm
from .serializers import MembershipSerializer, MeSerializer, UserSerializer


class MeView(APIView):
    @extend_schema(responses=MeSerializer)
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(request.user).data)


class UserViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Staff accounts. Regional administrators create and change them; imaging managers read their trust's."""

    serializer_class = UserSerializer

    def get_queryset(self):
        return perms.visible_users(self.request.user, User.objects.order_by("email"))

    def perform_create(self, serializer: BaseSerializer) -> None:
        perms.require(perms.is_regional_admin(self.request.user), "Only regional administrators add staff.")
        data = serializer.validated_data
        serializer.instance = run_service(
            services.user_invite,
            email=data["email"],
            full_name=data.get("full_name", ""),
            actor=actor_from_request(self.request),
        )
        if data.get("is_active") is False:
            services.user_update(user=serializer.instance, is_active=False, actor=actor_from_request(self.request))

    def perform_update(self, serializer: BaseSerializer) -> None:
        perms.require(perms.is_regional_admin(self.request.user), "Only regional administrators change staff.")
        data = serializer.validated_data
        run_service(
            services.user_update,
            user=serializer.instance,
            actor=actor_from_request(self.request),
            full_name=data.get("full_name"),
            is_active=data.get("is_active"),
        )


class MembershipViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Roles at trusts. Regional administrators grant any; imaging managers grant non-admin roles at their trust."""

    serializer_class = MembershipSerializer

    def get_queryset(self):
        queryset = Membership.objects.select_related("user", "trust")
        return perms.visible_memberships(self.request.user, queryset)

    def perform_create(self, serializer: BaseSerializer) -> None:
        data = serializer.validated_data
        perms.require(
            perms.may_grant(self.request.user, data["role"], data["trust"].pk),
            f"You cannot grant the {data['role']} role at {data['trust'].ods_code}.",
        )
        serializer.instance = run_service(services.membership_create, actor=actor_from_request(self.request), **data)

    def destroy(self, request: Request, *args: object, **kwargs: object) -> Response:
        membership = self.get_object()
        perms.require(perms.may_grant(request.user, membership.role, membership.trust_id))
        services.membership_delete(membership=membership, actor=actor_from_request(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


__all__ = ["MeView", "MembershipViewSet", "Perm", "UserViewSet"]
