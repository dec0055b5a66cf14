"""REST endpoints for the signed-in user, staff accounts and memberships."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from audit.context import actor_from_request
from portal.api import run_service

from . import permissions as perms
from . import services, tokens
from .models import ApiToken, Membership, User
from .permissions import Perm
from .serializers import (
    ApiTokenCreatedSerializer,
    ApiTokenSerializer,
    MembershipSerializer,
    MeSerializer,
    ServiceAccountSerializer,
    UserSerializer,
)


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


class ApiTokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Your API tokens (regional administrators: everyone's). Made only in a signed-in session with a
    second factor, never with another token, so a token cannot outlive its expiry by minting a successor."""

    serializer_class = ApiTokenSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return ApiToken.objects.none()
        return tokens.visible_tokens(self.request.user)

    @extend_schema(request=ApiTokenSerializer, responses={201: ApiTokenCreatedSerializer})
    def create(self, request: Request) -> Response:
        perms.require(
            not isinstance(request.auth, ApiToken), "Create tokens in a signed-in session, not with another token."
        )
        body = ApiTokenSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        owner = body.validated_data.get("user", request.user)
        perms.require(
            owner == request.user or perms.is_regional_admin(request.user),
            "Only regional administrators make tokens for service accounts.",
        )
        token, key = run_service(
            tokens.api_token_create,
            user=owner,
            name=body.validated_data.get("name", ""),
            expires_in_days=body.validated_data.get("expires_in_days"),
            created_by=request.user,
            actor=actor_from_request(request),
        )
        token.key = key
        return Response(ApiTokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=ApiTokenSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        token = self.get_object()
        perms.require(tokens.may_revoke(request.user, token))
        tokens.api_token_revoke(token=token, revoked_by=request.user, actor=actor_from_request(request))
        return Response(ApiTokenSerializer(token).data)


class ServiceAccountViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Machine clients of one trust (regional administrators only); deactivate one with PATCH users/{id}."""

    serializer_class = ServiceAccountSerializer

    def get_queryset(self):
        if not getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            perms.require(perms.is_regional_admin(self.request.user), "For regional administrators.")
        return User.objects.filter(is_service_account=True).prefetch_related("memberships__trust").order_by("email")

    @extend_schema(responses={201: ServiceAccountSerializer})
    def create(self, request: Request) -> Response:
        perms.require(perms.is_regional_admin(request.user), "Only regional administrators make service accounts.")
        body = ServiceAccountSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        account = run_service(
            tokens.service_account_create,
            trust=body.validated_data["trust"],
            name=body.validated_data["full_name"],
            role=body.validated_data["role"],
            actor=actor_from_request(request),
        )
        return Response(ServiceAccountSerializer(account).data, status=status.HTTP_201_CREATED)


__all__ = ["ApiTokenViewSet", "MeView", "MembershipViewSet", "Perm", "ServiceAccountViewSet", "UserViewSet"]
