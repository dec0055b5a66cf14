"""May this user do this to this object? The one place that answers, for views, the API and tasks.

Two questions, kept apart on purpose: *visibility* (may the user know the object exists? if not, the
caller answers 404, never 403, so trust B's objects are not even confirmed to trust A) and *permission*
(may they act on what they can see? if not, 403).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from django.core.exceptions import PermissionDenied
from django.db.models import Exists, Model, Q, QuerySet
from django.http import Http404

from .roles import Role

_CACHE_ATTR = "_portal_roles_by_trust"


class Perm(StrEnum):
    MANAGE_TRUSTS = "manage_trusts"
    VIEW_GATEWAY = "view_gateway"
    CHANGE_GATEWAY = "change_gateway"
    MANAGE_AGREEMENTS = "manage_agreements"
    VIEW_USERS = "view_users"
    MANAGE_USERS = "manage_users"
    MANAGE_MEMBERSHIPS = "manage_memberships"
    SEARCH_STUDIES = "search_studies"
    VIEW_AUDIT = "view_audit"
    ACKNOWLEDGE_AUDIT_ALERTS = "acknowledge_audit_alerts"
    PUSH_STUDIES = "push_studies"
    MANAGE_TRANSFERS = "manage_transfers"
    REQUEST_STUDIES = "request_studies"
    APPROVE_REQUESTS = "approve_requests"
    RECONCILE_ARRIVALS = "reconcile_arrivals"
    CHANGE_RECONCILIATION_SETTINGS = "change_reconciliation_settings"
    MANAGE_SHARE_LINKS = "manage_share_links"


# Which roles at the object's trust grant each permission. Regional administrators hold all of them.
_ROLES_FOR = {
    Perm.VIEW_GATEWAY: {Role.IMAGING_MANAGER, Role.CLINICIAN, Role.IG_OFFICER},
    Perm.CHANGE_GATEWAY: {Role.IMAGING_MANAGER},
    Perm.VIEW_USERS: {Role.IMAGING_MANAGER},
    Perm.MANAGE_MEMBERSHIPS: {Role.IMAGING_MANAGER},
    Perm.SEARCH_STUDIES: {Role.CLINICIAN, Role.IMAGING_MANAGER},
    Perm.VIEW_AUDIT: {Role.IG_OFFICER},
    Perm.ACKNOWLEDGE_AUDIT_ALERTS: {Role.IG_OFFICER},
    Perm.PUSH_STUDIES: {Role.CLINICIAN},
    Perm.MANAGE_TRANSFERS: {Role.IMAGING_MANAGER},
    Perm.MANAGE_SHARE_LINKS: {Role.IMAGING_MANAGER},
    Perm.MANAGE_TRUSTS: set(),
    Perm.MANAGE_AGREEMENTS: set(),
    Perm.MANAGE_USERS: set(),
    Perm.REQUEST_STUDIES: {Role.CLINICIAN},
    Perm.APPROVE_REQUESTS: {Role.IMAGING_MANAGER, Role.CLINICIAN},
    Perm.RECONCILE_ARRIVALS: {Role.IMAGING_MANAGER},
    Perm.CHANGE_RECONCILIATION_SETTINGS: {Role.IMAGING_MANAGER},
}

# Roles an imaging manager may hand out at their own trust; only regional administrators make more.
DELEGABLE_ROLES = {Role.CLINICIAN, Role.IMAGING_MANAGER, Role.IG_OFFICER}


def roles_by_trust(user) -> dict[int, set[str]]:
    """{trust id: roles}, read once per user object (one request or one task)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return {}
    cached = getattr(user, _CACHE_ATTR, None)
    if cached is None:
        cached = {}
        for trust_id, role in user.memberships.values_list("trust_id", "role"):
            cached.setdefault(trust_id, set()).add(role)
        setattr(user, _CACHE_ATTR, cached)
    return cached


def forget_roles(user) -> None:
    """Drop the cached roles after memberships change within the same request."""
    if hasattr(user, _CACHE_ATTR):
        delattr(user, _CACHE_ATTR)


def is_regional_admin(user) -> bool:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return user.is_superuser or any(Role.REGIONAL_ADMIN in roles for roles in roles_by_trust(user).values())


def member_trust_ids(user, perm: Perm | None = None) -> set[int]:
    """Trusts where the user belongs (perm=None) or holds a role granting `perm`."""
    table = roles_by_trust(user)
    if perm is None:
        return set(table)
    wanted = _ROLES_FOR[perm]
    return {trust_id for trust_id, roles in table.items() if roles & wanted}


def has_perm_at(user, perm: Perm, trust_id: int | None) -> bool:
    """May the user exercise `perm` at this trust?"""
    if is_regional_admin(user):
        return True
    return trust_id is not None and trust_id in member_trust_ids(user, perm)


def may_grant(user, role: str, trust_id: int) -> bool:
    if is_regional_admin(user):
        return True
    return role in DELEGABLE_ROLES and has_perm_at(user, Perm.MANAGE_MEMBERSHIPS, trust_id)


# --- querysets scoped to what a user may see ------------------------------------------------------


def visible_gateways(user, queryset: QuerySet) -> QuerySet:
    if is_regional_admin(user):
        return queryset
    return queryset.filter(trust_id__in=member_trust_ids(user))


def visible_agreements(user, queryset: QuerySet) -> QuerySet:
    if is_regional_admin(user):
        return queryset
    trusts = member_trust_ids(user)
    return queryset.filter(Q(trust_a_id__in=trusts) | Q(trust_b_id__in=trusts))


def visible_users(user, queryset: QuerySet) -> QuerySet:
    if is_regional_admin(user):
        return queryset
    trusts = member_trust_ids(user, Perm.VIEW_USERS)
    return queryset.filter(Q(pk=user.pk) | Q(memberships__trust_id__in=trusts)).distinct()


def visible_memberships(user, queryset: QuerySet) -> QuerySet:
    if is_regional_admin(user):
        return queryset
    trusts = member_trust_ids(user, Perm.VIEW_USERS)
    return queryset.filter(Q(user_id=user.pk) | Q(trust_id__in=trusts))


# --- the audit trail: IG officers read their own trusts' events; regional administrators read all ----


def _trusts() -> QuerySet:
    """Every trust (accounts sits below directory: see models.trust_model)."""
    from .models import trust_model  # not at import time: this module is read before the models are ready

    return trust_model()._default_manager.all()


def audit_trust_codes(user) -> set[str] | None:
    """ODS codes of the trusts whose audit events the user may read; None means every trust."""
    if is_regional_admin(user):
        return None
    trust_ids = member_trust_ids(user, Perm.VIEW_AUDIT)
    return set(_trusts().filter(pk__in=trust_ids).values_list("ods_code", flat=True)) if trust_ids else set()


def may_view_audit(user) -> bool:
    return is_regional_admin(user) or bool(member_trust_ids(user, Perm.VIEW_AUDIT))


def visible_audit_events(user, queryset: QuerySet) -> QuerySet:
    """Events whose scope names one of the user's audit trusts. An event about trust B only (its scope
    lists only B) never reaches an IG officer of A, whatever else the query asks for."""
    codes = audit_trust_codes(user)
    if codes is None:
        return queryset
    if not codes:
        return queryset.none()
    condition = Q()
    for code in sorted(codes):
        condition |= Q(scope__has_element=code)
    return queryset.filter(condition)


def visible_audit_alerts(user, queryset: QuerySet) -> QuerySet:
    """Alerts of the user's audit trusts; region-wide alerts (no trust) reach regional administrators only."""
    codes = audit_trust_codes(user)
    if codes is None:
        return queryset
    return queryset.filter(trust__in=codes) if codes else queryset.none()


def may_acknowledge_alert(user, alert) -> bool:
    if is_regional_admin(user):
        return True
    trust_id = _trusts().filter(ods_code=alert.trust).values_list("pk", flat=True).first()
    return has_perm_at(user, Perm.ACKNOWLEDGE_AUDIT_ALERTS, trust_id)


def get_visible_or_404(queryset: QuerySet, **lookup: object) -> Model:
    """Fetch from an already scoped queryset: what the user may not see does not exist for them."""
    try:
        return queryset.get(**lookup)
    except (queryset.model.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404("Not found.") from exc


def require(allowed: bool, message: str = "You do not have permission to do that.") -> None:
    if not allowed:
        raise PermissionDenied(message)


# --- patients' images: only people working at the trust, in a clinical or imaging role ----------------


def study_search_trust_ids(user) -> set[int]:
    """Trusts whose PACS the user may search. No regional-administrator bypass on purpose: running the
    region's directory is no reason to see a trust's patients (SPEC section 2, "sees only studies...")."""
    return member_trust_ids(user, Perm.SEARCH_STUDIES)


def may_search_studies(user, trust_id: int) -> bool:
    return trust_id in study_search_trust_ids(user)


def visible_manifests(user, queryset: QuerySet) -> QuerySet:
    """An exchanged study's manifest (FHIR ImagingStudy, KOS): to those who may search the PACS of the trust
    holding it or of the trust that sent it. No regional-administrator bypass, as for searching."""
    trusts = study_search_trust_ids(user)
    return queryset.filter(Q(holder_id__in=trusts) | Q(sender_id__in=trusts))


def visible_receiver_records(user, queryset: QuerySet) -> QuerySet:
    """What the portal's receiver took in or quarantined: imaging managers see what their trust's
    gateways sent; regional administrators see everything, including senders no gateway explains."""
    if is_regional_admin(user):
        return queryset
    return queryset.filter(sender_trust_id__in=member_trust_ids(user, Perm.CHANGE_GATEWAY))


def may_view_receiver(user) -> bool:
    return is_regional_admin(user) or bool(member_trust_ids(user, Perm.CHANGE_GATEWAY))


# --- transfers: members of the source or the destination see them --------------------------------


def may_push_from(user, trust_id: int) -> bool:
    """Pushing a trust's studies is a clinician's act at that trust (SPEC section 7), even for administrators."""
    return trust_id in member_trust_ids(user, Perm.PUSH_STUDIES)


def visible_transfers(user, queryset: QuerySet) -> QuerySet:
    """Only members of the source or destination (SPEC section 2), whatever their role there. No
    regional-administrator bypass: running the region is no reason to see who sent which patient where."""
    trusts = member_trust_ids(user)
    return queryset.filter(Q(source_id__in=trusts) | Q(destination_id__in=trusts))


def may_manage_transfer(user, transfer) -> bool:
    """Cancel or retry: whoever asked for it, or an imaging manager of either trust."""
    if transfer.requested_by_id == getattr(user, "pk", None) and user.is_active:
        return True
    return any(has_perm_at(user, Perm.MANAGE_TRANSFERS, t) for t in (transfer.source_id, transfer.destination_id))


def transfer_operations_trust_ids(user) -> set[int]:
    """Trusts whose gateways' transfer queues the user runs (imaging managers). No regional-administrator
    bypass, as for visible_transfers: the queue shows which patient goes where."""
    return member_trust_ids(user, Perm.MANAGE_TRANSFERS)


def may_view_transfer_operations(user) -> bool:
    return bool(transfer_operations_trust_ids(user))


# --- requests (pulls): members of the requesting or the source trust see them ---------------------


def may_request_for(user, trust_id: int) -> bool:
    """Asking another trust for a patient's images is a clinician's act at the requesting trust."""
    return trust_id in member_trust_ids(user, Perm.REQUEST_STUDIES)


def may_approve_requests_at(user, trust_id: int) -> bool:
    """Approving or declining releases patients' images: the source trust's imaging managers and
    clinicians only, with no regional-administrator bypass (as for transfers)."""
    return trust_id in member_trust_ids(user, Perm.APPROVE_REQUESTS)


def visible_requests(user, queryset: QuerySet) -> QuerySet:
    trusts = member_trust_ids(user)
    return queryset.filter(Q(requesting_trust_id__in=trusts) | Q(source_trust_id__in=trusts))


def may_search_request_again(user, request) -> bool:
    """Re-querying the source PACS for a request: the clinician who asked, or the source's approvers."""
    asker = request.requested_by_id == getattr(user, "pk", None) and may_request_for(user, request.requesting_trust_id)
    return asker or may_approve_requests_at(user, request.source_trust_id)


# --- reconciliation on arrival: the receiving trust's imaging managers -----------------------------

# Trust fields an imaging manager of that trust may change; everything else is the regional administrator's.
RECONCILIATION_SETTINGS = frozenset({"reconcile_patient_id", "prefix_accession", "prefix_study_description"})


def visible_reconciliations(user, queryset: QuerySet) -> QuerySet:
    """Held arrivals carry patient identity: only the receiving trust's imaging managers see them."""
    return queryset.filter(destination_id__in=member_trust_ids(user, Perm.RECONCILE_ARRIVALS))


def may_read_copies_register(user) -> bool:
    """The register of copies (copies/): imaging managers and IG officers (for their trusts), regional admins."""
    return is_regional_admin(user) or bool(
        member_trust_ids(user, Perm.MANAGE_TRANSFERS) | member_trust_ids(user, Perm.VIEW_AUDIT)
    )


def may_reconcile_at(user, trust_id: int) -> bool:
    return trust_id in member_trust_ids(user, Perm.RECONCILE_ARRIVALS)


def may_change_trust(user, trust_id: int, fields: set[str]) -> bool:
    """Regional administrators change any field; a trust's imaging managers only its reconciliation switches."""
    if is_regional_admin(user):
        return True
    return (
        bool(fields)
        and fields <= RECONCILIATION_SETTINGS
        and has_perm_at(user, Perm.CHANGE_RECONCILIATION_SETTINGS, trust_id)
    )


# --- share links: a clinician creates them; the creator and the trust's imaging managers see and revoke ------


def may_create_share_link(user, trust_id: int) -> bool:
    """Sharing a trust's studies with an outsider is a clinician's act at that trust (SPEC section 7)."""
    return trust_id in member_trust_ids(user, Perm.PUSH_STUDIES)


def visible_share_links(user, queryset: QuerySet) -> QuerySet:
    """The creator's own links, and every link of a trust where the user is an imaging manager. No
    regional-administrator bypass: running the region is no reason to see who was sent which patient."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return queryset.none()
    managed = member_trust_ids(user, Perm.MANAGE_SHARE_LINKS)
    own = Q(created_by_id=user.pk, trust_id__in=member_trust_ids(user))  # not once they have left the trust
    return queryset.filter(own | Q(trust_id__in=managed))


def may_manage_share_link(user, link) -> bool:
    """Revoke, read opinions and accesses: the creator while still a member of the link's trust, or an
    imaging manager of it."""
    if not getattr(user, "is_active", False):
        return False
    if link.created_by_id == user.pk and link.trust_id in member_trust_ids(user):
        return True
    return link.trust_id in member_trust_ids(user, Perm.MANAGE_SHARE_LINKS)


# --- what the staff navigation offers (a link nobody could use is noise) ---------------------------


def may_see_requests(user) -> bool:
    """The Requests pages: clinicians who ask, and the approvers who answer."""
    return bool(member_trust_ids(user, Perm.REQUEST_STUDIES) | member_trust_ids(user, Perm.APPROVE_REQUESTS))


def may_see_reconciliation(user) -> bool:
    return bool(member_trust_ids(user, Perm.RECONCILE_ARRIVALS))


# --- who gets told: the audiences of notifications and alerts, read from the same rules ---------------
#
# Each audience is read one membership at a time: a user who is an IG officer at trust A and a clinician at
# trust B belongs to B's audiences only as a clinician. Only active users, and no regional-administrator
# bypass: hearing about a trust's work is for the people whose role there does that work (the audit alert
# audience names regional administrators where they are the ones to act). Each returns a User queryset;
# `emails()` turns one into the addresses to write to.


def holders_at(perm: Perm, trust_id: int | None) -> QuerySet:
    """Active users whose membership at this trust carries a role granting `perm` there."""
    return _holders(perm, trust_id=trust_id)


def _holders(perm: Perm, **membership: object) -> QuerySet:
    from .models import Membership

    # One filter() on the membership: its trust and its role are those of the same row.
    memberships = Membership.objects.filter(role__in=_ROLES_FOR[perm], **membership).values("user_id")
    return _users(pk__in=memberships)


def approvers_of(trust_id: int) -> QuerySet:
    """Who answers a request made to the trust (new requests, escalations): its imaging managers and clinicians."""
    return holders_at(Perm.APPROVE_REQUESTS, trust_id)


def imaging_managers_of(trust_id: int) -> QuerySet:
    """Who runs the trust's gateways and files what arrives (arrivals, second opinions returned)."""
    return holders_at(Perm.MANAGE_TRANSFERS, trust_id)


def ig_officers_of(trust_id: int) -> QuerySet:
    """Who reads and acknowledges the trust's audit alerts."""
    return holders_at(Perm.ACKNOWLEDGE_AUDIT_ALERTS, trust_id)


def regional_admins() -> QuerySet:
    from .models import Membership

    admins = Membership.objects.filter(role=Role.REGIONAL_ADMIN).values("user_id")
    return _users().filter(Q(pk__in=admins) | Q(is_superuser=True))


def requester_among(user_id: int | None, trust_ids: Iterable[int | None]) -> QuerySet:
    """The person who asked for something (a transfer, a request, a share link), while they are active and
    still belong to one of the trusts it involves: the page their email links to is theirs to open."""
    from .models import Membership

    member = Membership.objects.filter(user_id=user_id, trust_id__in=list(trust_ids))
    return _users(pk=user_id).filter(Exists(member))


def share_link_managers(link) -> QuerySet:
    """Who hears of a second opinion returned on a link: those who may manage it (`may_manage_share_link`),
    its creator while a member of the link's trust and the trust's imaging managers."""
    creator = requester_among(link.created_by_id, [link.trust_id]).values("pk")
    return holders_at(Perm.MANAGE_SHARE_LINKS, link.trust_id) | _users(pk__in=creator)


def audit_alert_audience(ods_code: str) -> QuerySet:
    """Who is emailed an audit alert: the IG officers of the alert's trust, or the regional administrators
    when it has none (someone must hear); for a region-wide alert (no trust) every IG officer and every
    regional administrator."""
    if not ods_code:
        return _holders(Perm.ACKNOWLEDGE_AUDIT_ALERTS) | regional_admins()
    officers = _holders(Perm.ACKNOWLEDGE_AUDIT_ALERTS, trust__ods_code=ods_code)
    return officers if officers.exists() else regional_admins()


def _users(**lookup: object) -> QuerySet:
    from .models import User

    return User.objects.filter(is_active=True, **lookup)


def emails(users: QuerySet) -> list[str]:
    """The audience's addresses, each once, in a stable order."""
    return sorted(set(users.values_list("email", flat=True)))


# --- the regional archive: forwarding rules (a trust's imaging managers), migrations (regional administrators)


def forwarding_trust_ids(user) -> set[int]:
    """Trusts whose forwarding rules the user sets: their imaging managers (regional administrators: all)."""
    if is_regional_admin(user):
        return set(_trusts().values_list("pk", flat=True))
    return member_trust_ids(user, Perm.MANAGE_TRANSFERS)


def may_manage_forwarding(user, trust_id: int) -> bool:
    return has_perm_at(user, Perm.MANAGE_TRANSFERS, trust_id)


def visible_forwarding_rules(user, queryset: QuerySet) -> QuerySet:
    return queryset.filter(trust_id__in=forwarding_trust_ids(user))


def may_run_migrations(user) -> bool:
    """Copying whole archives between gateways is the region's business: regional administrators only."""
    return is_regional_admin(user)
