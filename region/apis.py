"""REST endpoints for forwarding rules (a trust's imaging managers) and migrations (regional administrators)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import permissions as perms
from audit.context import actor_from_request
from portal.api import run_service

from . import forwarding, migration
from .models import ForwardingRule, MigrationJob
from .serializers import (
    ForwardingRuleActiveSerializer,
    ForwardingRuleSerializer,
    MigrationJobSerializer,
    MigrationStudySerializer,
)


class ForwardingRuleViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """A trust's forwarding rules to the regional archive; others' rules are not found (404)."""

    serializer_class = ForwardingRuleSerializer

    def get_queryset(self):
        rules = ForwardingRule.objects.select_related("trust", "archive", "created_by")
        return perms.visible_forwarding_rules(self.request.user, rules)

    def perform_create(self, serializer: ForwardingRuleSerializer) -> None:
        data = serializer.validated_data
        serializer.instance = run_service(
            forwarding.forwarding_rule_create,
            trust=data["trust"],
            archive=data["archive"],
            trigger=data["trigger"],
            modality=data.get("modality", ""),
            user=self.request.user,
            actor=actor_from_request(self.request),
        )

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        body = ForwardingRuleActiveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        rule = run_service(
            forwarding.forwarding_rule_set_active,
            rule=self.get_object(),
            active=body.validated_data["active"],
            user=request.user,
            actor=actor_from_request(request),
        )
        return Response(ForwardingRuleSerializer(rule).data)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        run_service(
            forwarding.forwarding_rule_delete,
            rule=self.get_object(),
            user=request.user,
            actor=actor_from_request(request),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class MigrationJobViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Bulk migrations between gateways: regional administrators only (anyone else: 403)."""

    serializer_class = MigrationJobSerializer

    def initial(self, request: Request, *args: object, **kwargs: object) -> None:
        super().initial(request, *args, **kwargs)
        if not perms.may_run_migrations(request.user):
            raise PermissionDenied("Migrations are for regional administrators.")

    def get_queryset(self):
        return MigrationJob.objects.select_related("source__trust", "destination__trust", "created_by")

    def perform_create(self, serializer: MigrationJobSerializer) -> None:
        data = serializer.validated_data
        serializer.instance = run_service(
            migration.migration_create, user=self.request.user, actor=actor_from_request(self.request), **data
        )

    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        return self._change("pause", request)

    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        return self._change("resume", request)

    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        return self._change("cancel", request)

    @action(detail=True, methods=["get"])
    def report(self, request: Request, pk: str | None = None) -> Response:
        job = self.get_object()
        studies = job.studies.exclude(verdict="").exclude(verdict="ok").order_by("pk")
        page = self.paginate_queryset(studies)
        data = MigrationStudySerializer(page, many=True).data
        response = self.get_paginated_response(data)
        response.data["summary"] = job.report
        return response

    def _change(self, change: str, request: Request) -> Response:
        job = get_object_or_404(MigrationJob, pk=self.kwargs["pk"])
        job = run_service(migration.migration_change, job=job, change=change, actor=actor_from_request(request))
        return Response(MigrationJobSerializer(job).data)
