"""Reading the register: where copies of a study are, a patient's copies across the region, corrections
waiting for a holder. Who sees what is accounts.permissions' answer, applied here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Count, Max, Min, Q, QuerySet

from accounts import permissions as perms

from .models import Copy, CopyState, Correction, CorrectionDelivery, ProcedureMapping, UnmappedProcedure

SHOWN = (CopyState.HELD, CopyState.REJECTED, CopyState.CORRECTED)


def visible_copies(user: Any, queryset: QuerySet | None = None) -> QuerySet:
    """A copy is seen by the source's imaging managers (where did what we sent go?), the holder's (what do we
    hold?), either trust's IG officers, and regional administrators."""
    queryset = Copy.objects.all() if queryset is None else queryset
    if perms.is_regional_admin(user):
        return queryset
    managers = perms.member_trust_ids(user, perms.Perm.MANAGE_TRANSFERS)
    ig = perms.member_trust_ids(user, perms.Perm.VIEW_AUDIT)
    trusts = managers | ig
    return queryset.filter(Q(source_id__in=trusts) | Q(holder_id__in=trusts))


def may_see_copies(user: Any) -> bool:
    return perms.may_read_copies_register(user)


@dataclass
class Holding:
    """One trust's copies of one study, under one identity."""

    holder: str
    holder_name: str
    source: str
    study_instance_uid: str
    patient_id: str
    issuer: str
    accession_number: str
    nhs_number: str
    patient_name: str
    study_description: str
    state: str
    instances: int
    since: datetime | None
    last: datetime | None
    transfers: list[int] = field(default_factory=list)
    vias: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "holder": self.holder,
            "holder_name": self.holder_name,
            "source": self.source,
            "study_instance_uid": self.study_instance_uid,
            "patient_id": self.patient_id,
            "issuer": self.issuer,
            "accession_number": self.accession_number,
            "nhs_number": self.nhs_number,
            "patient_name": self.patient_name,
            "study_description": self.study_description,
            "state": self.state,
            "instances": self.instances,
            "since": self.since.isoformat() if self.since else None,
            "last_stored": self.last.isoformat() if self.last else None,
            "transfers": self.transfers,
            "via": self.vias,
        }


GROUP = (
    "holder__ods_code",
    "holder__name",
    "source__ods_code",
    "study_instance_uid",
    "patient_id",
    "issuer",
    "accession_number",
    "nhs_number",
    "patient_name",
    "study_description",
    "state",
)


def holdings(user: Any, *, study_instance_uid: str = "", nhs_number: str = "", holder: str = "") -> list[Holding]:
    """Copies grouped by holder, study, identity and state: "where are copies of this study?" (by study) and
    "copies of this patient's images across the region" (by NHS number)."""
    copies = visible_copies(user, Copy.objects.filter(state__in=SHOWN))
    if study_instance_uid:
        copies = copies.filter(study_instance_uid=study_instance_uid)
    if nhs_number:
        copies = copies.filter(nhs_number=nhs_number)
    if holder:
        copies = copies.filter(holder__ods_code=holder)
    groups = (
        copies.values(*GROUP)
        .annotate(instances=Count("id"), since=Min("stored_at"), last=Max("stored_at"))
        .order_by("study_instance_uid", "holder__ods_code", "since")
    )
    result = [
        Holding(
            holder=g["holder__ods_code"],
            holder_name=g["holder__name"],
            source=g["source__ods_code"],
            study_instance_uid=g["study_instance_uid"],
            patient_id=g["patient_id"],
            issuer=g["issuer"],
            accession_number=g["accession_number"],
            nhs_number=g["nhs_number"],
            patient_name=g["patient_name"],
            study_description=g["study_description"],
            state=g["state"],
            instances=g["instances"],
            since=g["since"],
            last=g["last"],
        )
        for g in groups[:500]
    ]
    by_key: dict[tuple[str, str], list[Holding]] = {}
    for h in result:
        by_key.setdefault((h.holder, h.study_instance_uid), []).append(h)
    links = copies.values_list("holder__ods_code", "study_instance_uid", "transfer_id", "via").distinct()
    for holder_code, study, transfer_id, via in links:
        for h in by_key.get((holder_code, study), []):
            if transfer_id and transfer_id not in h.transfers:
                h.transfers.append(transfer_id)
            if via not in h.vias:
                h.vias.append(via)
    for h in result:
        h.transfers.sort()
    return result


def corrections_for_study(user: Any, study_instance_uid: str) -> QuerySet:
    return visible_corrections(user).filter(study_instance_uid=study_instance_uid)


def visible_corrections(user: Any) -> QuerySet:
    """The source's imaging managers and IG officers see its corrections; a holder's see those sent to it."""
    corrections = Correction.objects.select_related("source", "created_by").prefetch_related("deliveries__holder")
    if perms.is_regional_admin(user):
        return corrections
    trusts = perms.member_trust_ids(user, perms.Perm.MANAGE_TRANSFERS) | perms.member_trust_ids(
        user, perms.Perm.VIEW_AUDIT
    )
    return corrections.filter(Q(source_id__in=trusts) | Q(deliveries__holder_id__in=trusts)).distinct()


def received_deliveries(user: Any, *, unacknowledged: bool = False) -> QuerySet:
    """Corrections sent to the trusts where the user reconciles arrivals (their imaging managers)."""
    deliveries = CorrectionDelivery.objects.select_related("correction__source", "holder", "gateway").filter(
        holder_id__in=perms.member_trust_ids(user, perms.Perm.RECONCILE_ARRIVALS)
    )
    if unacknowledged:
        deliveries = deliveries.filter(acknowledged_at__isnull=True)
    return deliveries.order_by("-correction__created_at", "pk")


def mapping_rows(trust_id: int) -> QuerySet:
    return ProcedureMapping.objects.filter(trust_id=trust_id)


def unmapped(trust_id: int) -> QuerySet:
    return UnmappedProcedure.objects.filter(trust_id=trust_id).select_related("source")
