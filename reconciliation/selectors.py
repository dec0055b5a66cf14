"""Reading the reconciliation queue: what a user may see, with how many instances each item holds."""

from __future__ import annotations

from django.db.models import Count, F, Q, QuerySet

from accounts import permissions as perms
from transfers.models import InstanceState

from .models import Outcome, StudyReconciliation


def reconciliation_list(*, user, outcome: str = Outcome.HELD) -> QuerySet[StudyReconciliation]:
    queryset = perms.visible_reconciliations(
        user,
        StudyReconciliation.objects.select_related("destination", "transfer__source", "resolved_by"),
    )
    if outcome:
        queryset = queryset.filter(outcome__in=outcome.split(","))
    held = Q(
        transfer__instances__state=InstanceState.HELD,
        transfer__instances__study_instance_uid=F("study_instance_uid"),
    )
    return queryset.annotate(held_instances=Count("transfer__instances", filter=held)).order_by("-created_at", "-pk")
