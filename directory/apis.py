"""REST endpoints for trusts, gateways and agreements: validate, check permission, call a service."""

from __future__ import annotations

from rest_framework import mixins, viewsets
from rest_framework.request import Request
from rest_framework.serializers import BaseSerializer

from accounts import permissions as perms
from accounts.permissions import Perm
from audit.context import actor_from_request
from portal.api import run_service

from . import services
from .models import Gateway, SharingAgreement, Trust
from .serializers import AgreementSerializer, GatewaySerializer, TrustSerializer


class TrustViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """The regional directory: every signed-in user may read it; regional administrators change it."""

    serializer_class = TrustSerializer
    lookup_field = "ods_code"
    queryset = Trust.objects.prefetch_related("gateways").order_by("ods_code")

    def perform_create(self, serializer: BaseSerializer) -> None:
        perms.require(perms.is_regional_admin(self.request.user), "Only regional administrators add trusts.")
        serializer.instance = run_service(
            services.trust_save, actor=actor_from_request(self.request), **serializer.validated_data
        )

    def perform_update(self, serializer: BaseSerializer) -> None:
        perms.require(
            perms.may_change_trust(self.request.user, serializer.instance.pk, set(serializer.validated_data)),
            "Only regional administrators change trusts; a trust's imaging managers may change only its "
            f"reconciliation settings ({', '.join(sorted(perms.RECONCILIATION_SETTINGS))}).",
        )
        run_service(
            services.trust_save,
            actor=actor_from_request(self.request),
            instance=serializer.instance,
            **serializer.validated_data,
        )


class GatewayViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """A trust's DICOM endpoints: visible to its members, changed by its imaging managers. The API serves
    exchange.apis.GatewayViewSet, which adds the live echo (talking to a gateway is exchange's)."""

    serializer_class = GatewaySerializer

    def get_queryset(self):
        return perms.visible_gateways(self.request.user, Gateway.objects.select_related("trust"))

    def perform_create(self, serializer: BaseSerializer) -> None:
        trust = serializer.validated_data["trust"]
        perms.require(
            perms.has_perm_at(self.request.user, Perm.CHANGE_GATEWAY, trust.pk),
            f"You cannot add gateways for {trust.ods_code}.",
        )
        serializer.instance = run_service(
            services.gateway_save, actor=actor_from_request(self.request), **serializer.validated_data
        )

    def perform_update(self, serializer: BaseSerializer) -> None:
        gateway = serializer.instance
        for trust_id in {gateway.trust_id, serializer.validated_data.get("trust", gateway.trust).pk}:
            perms.require(perms.has_perm_at(self.request.user, Perm.CHANGE_GATEWAY, trust_id))
        run_service(
            services.gateway_save,
            actor=actor_from_request(self.request),
            instance=gateway,
            **serializer.validated_data,
        )


class AgreementViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = AgreementSerializer

    def get_queryset(self):
        queryset = SharingAgreement.objects.select_related("trust_a", "trust_b")
        return perms.visible_agreements(self.request.user, queryset)

    def _require_admin(self, request: Request) -> None:
        perms.require(perms.is_regional_admin(request.user), "Only regional administrators manage agreements.")

    def perform_create(self, serializer: BaseSerializer) -> None:
        self._require_admin(self.request)
        serializer.instance = run_service(
            services.agreement_save, actor=actor_from_request(self.request), **serializer.validated_data
        )

    def perform_update(self, serializer: BaseSerializer) -> None:
        self._require_admin(self.request)
        run_service(
            services.agreement_save,
            actor=actor_from_request(self.request),
            instance=serializer.instance,
            **serializer.validated_data,
        )
