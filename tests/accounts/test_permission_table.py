"""Who may do what, and who is told what: role x action x own or other trust, written out as a table a
reader can check against SPEC section 2, for every rule in accounts.permissions._ROLES_FOR, the actions
that refuse regional administrators their bypass, and every audience of a notification or alert.

The expected tables are written by hand, not derived from the code: a rule that changes fails here."""

from __future__ import annotations

import pytest

from accounts import permissions as perms
from accounts.permissions import _ROLES_FOR, Perm
from accounts.roles import Role
from directory.models import Trust
from tests.helpers import grant, make_user

pytestmark = pytest.mark.django_db

CL, IM, IG, RA = Role.CLINICIAN, Role.IMAGING_MANAGER, Role.IG_OFFICER, Role.REGIONAL_ADMIN
ROLES = [CL, IM, IG, RA]

# Which roles at a trust grant each permission there (regional administrators: every one, everywhere).
GRANTED_BY = {
    Perm.VIEW_GATEWAY: {CL, IM, IG},
    Perm.CHANGE_GATEWAY: {IM},
    Perm.VIEW_USERS: {IM},
    Perm.MANAGE_MEMBERSHIPS: {IM},
    Perm.SEARCH_STUDIES: {CL, IM},
    Perm.VIEW_AUDIT: {IG},
    Perm.ACKNOWLEDGE_AUDIT_ALERTS: {IG},
    Perm.PUSH_STUDIES: {CL},
    Perm.MANAGE_TRANSFERS: {IM},
    Perm.MANAGE_SHARE_LINKS: {IM},
    Perm.MANAGE_TRUSTS: set(),
    Perm.MANAGE_AGREEMENTS: set(),
    Perm.MANAGE_USERS: set(),
    Perm.REQUEST_STUDIES: {CL},
    Perm.APPROVE_REQUESTS: {IM, CL},
    Perm.RECONCILE_ARRIVALS: {IM},
    Perm.CHANGE_RECONCILIATION_SETTINGS: {IM},
}

# Acts on patients' images that no regional-administrator bypass reaches: only these roles, at that trust.
ACTIONS = {
    "search its PACS": (perms.may_search_studies, {CL, IM}),
    "push its studies": (perms.may_push_from, {CL}),
    "request images for it": (perms.may_request_for, {CL}),
    "approve requests made to it": (perms.may_approve_requests_at, {IM, CL}),
    "reconcile its arrivals": (perms.may_reconcile_at, {IM}),
    "create share links of its studies": (perms.may_create_share_link, {CL}),
}

# Who hears about a trust's work (one membership at a time; no regional-administrator bypass).
AUDIENCES = {
    "approvers_of (new and overdue requests)": (perms.approvers_of, {CL, IM}),
    "imaging_managers_of (arrivals, returned opinions)": (perms.imaging_managers_of, {IM}),
    "ig_officers_of (audit alerts)": (perms.ig_officers_of, {IG}),
}


def other_role(role: str) -> str:
    """A different role, held at the other trust by the same person."""
    return IG if role == CL else CL


@pytest.fixture
def person(trust_a: Trust, trust_b: Trust):
    """A user with `role` at the trust in question ("own"), or only at another trust ("other"), or with
    `role` at another trust and a different role at this one ("other, and another role here")."""
    made: list = []

    def make(role: str, where: str):
        user = make_user(f"person{len(made)}@example.test")
        made.append(user)
        if where == "own":
            return grant(user, trust_a, role), {role}
        grant(user, trust_b, role)
        if where == "other":
            return user, set()
        here = other_role(role)
        return grant(user, trust_a, here), {here}

    return make


def test_the_table_covers_every_rule():
    assert set(GRANTED_BY) == set(Perm) == set(_ROLES_FOR)


WHERE = ["own", "other", "other, and another role here"]


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("role", ROLES)
def test_a_role_grants_each_permission_at_its_own_trust_only(person, trust_a, role, where):
    user, roles_here = person(role, where)
    admin = role == RA or RA in roles_here
    wrong = []
    for perm, granted_by in GRANTED_BY.items():
        held_here = bool(roles_here & granted_by)
        if perms.has_perm_at(user, perm, trust_a.pk) is not (admin or held_here):
            wrong.append(f"has_perm_at {perm}")
        if (trust_a.pk in perms.member_trust_ids(user, perm)) is not held_here:
            wrong.append(f"member_trust_ids {perm}")
    assert wrong == []


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("role", ROLES)
def test_acts_on_patients_images_need_the_role_at_that_trust_even_for_administrators(person, trust_a, role, where):
    user, roles_here = person(role, where)
    wrong = [
        action for action, (may, roles) in ACTIONS.items() if may(user, trust_a.pk) is not bool(roles_here & roles)
    ]
    assert wrong == []


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("role", ROLES)
def test_each_audience_is_the_roles_at_that_trust_read_one_membership_at_a_time(person, trust_a, role, where):
    user, roles_here = person(role, where)
    wrong = [
        audience
        for audience, (of, roles) in AUDIENCES.items()
        if (user.email in perms.emails(of(trust_a.pk))) is not bool(roles_here & roles)
    ]
    assert wrong == []


def test_an_inactive_user_is_in_no_audience(trust_a):
    gone = grant(grant(make_user("gone@example.test"), trust_a, IM), trust_a, CL)
    gone.is_active = False
    gone.save()
    for of, _ in AUDIENCES.values():
        assert gone.email not in perms.emails(of(trust_a.pk))


# --- audiences that name a person or fall back ----------------------------------------------------------


def test_the_requester_is_told_while_active_and_at_a_trust_involved(trust_a, trust_b):
    trust_c = Trust.objects.create(ods_code="RCC", name="Gamma")
    asker = grant(make_user("asker@example.test"), trust_a, CL)
    assert perms.emails(perms.requester_among(asker.pk, [trust_a.pk, trust_b.pk])) == [asker.email]
    assert perms.emails(perms.requester_among(asker.pk, [trust_b.pk, trust_c.pk])) == []  # left, or never there
    asker.is_active = False
    asker.save()
    assert perms.emails(perms.requester_among(asker.pk, [trust_a.pk])) == []


def test_a_share_links_audience_is_who_may_manage_it(trust_a, trust_b, alice, amir, bea):
    from sharing.models import ShareLink

    link = ShareLink(trust=trust_a, created_by=alice)
    assert perms.emails(perms.share_link_managers(link)) == sorted([alice.email, amir.email])
    for user in (alice, amir, bea):
        assert (user.email in perms.emails(perms.share_link_managers(link))) is perms.may_manage_share_link(user, link)
    alice.memberships.all().delete()  # the creator left the trust: no longer told (nor able to look)
    assert perms.emails(perms.share_link_managers(link)) == [amir.email]


@pytest.mark.parametrize("role", ROLES)
def test_an_audit_alert_goes_to_the_trusts_ig_officers(trust_a, trust_b, role):
    officer = grant(make_user("officer@example.test"), trust_a, IG)
    other = grant(make_user("other@example.test"), trust_b, role)
    assert perms.emails(perms.audit_alert_audience("RAA")) == [officer.email]
    both = grant(make_user("both@example.test"), trust_b, IG)
    grant(both, trust_a, other_role(IG))  # an IG officer elsewhere, a clinician here: not this trust's officer
    assert both.email not in perms.emails(perms.audit_alert_audience("RAA"))
    assert other.email not in perms.emails(perms.audit_alert_audience("RAA"))


def test_a_trust_without_an_ig_officer_has_its_alerts_go_to_the_regional_administrators(trust_a, trust_b, rita):
    elsewhere = grant(grant(make_user("ivy@example.test"), trust_b, IG), trust_a, CL)
    assert perms.emails(perms.audit_alert_audience("RAA")) == [rita.email]
    assert elsewhere.email not in perms.emails(perms.audit_alert_audience("RAA"))


def test_a_region_wide_alert_goes_to_every_ig_officer_and_regional_administrator(trust_a, trust_b, ada, rita, alice):
    ida = grant(make_user("ida@example.test"), trust_b, IG)
    assert perms.emails(perms.audit_alert_audience("")) == sorted([ada.email, ida.email, rita.email])
