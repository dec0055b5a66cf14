"""The alert rules, their thresholds, who is told, and who may see and acknowledge an alert."""

from __future__ import annotations

from datetime import date, datetime, time
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.test import RequestFactory

from accounts.roles import Role
from audit import alerts, catalogue
from audit.context import SYSTEM, Actor, share_link_actor
from audit.models import AuditAlert
from audit.tasks import scan_alerts
from tests.audit.conftest import OTHER_STUDY, PATIENT, STUDY, events
from tests.helpers import api_as, grant, make_user, signed_in

pytestmark = pytest.mark.django_db
LONDON = ZoneInfo("Europe/London")
WEEKDAY_MORNING = datetime(2026, 3, 4, 10, 0, tzinfo=LONDON)  # a Wednesday


def staff(user, ip: str = "10.0.0.1") -> Actor:
    return Actor(type="user", user_id=user.pk, label=user.email, client_ip=ip)


def at(moment: datetime):
    """Record events as if at `moment` (the rules read event timestamps, never the clock)."""
    return mock.patch("audit.services.timezone.now", return_value=moment)


@pytest.fixture(autouse=True)
def _working_hours(settings):
    settings.AUDIT_WORKING_HOURS = (time(8, 0), time(18, 0))
    settings.AUDIT_WORKING_DAYS = frozenset(range(5))
    settings.AUDIT_HOLIDAYS = frozenset()


def kinds(trust: str | None = None) -> list[str]:
    found = AuditAlert.objects.all() if trust is None else AuditAlert.objects.filter(trust=trust)
    return sorted(found.values_list("kind", flat=True))


# --- emergency access --------------------------------------------------------------------------------


def test_an_emergency_auto_approval_alerts_both_trusts_and_emails_their_ig_officers(ada, ida):
    with at(WEEKDAY_MORNING):
        catalogue.EMERGENCY_AUTO_APPROVAL.record(
            actor=SYSTEM, trust="RAA", peer_trust="RBB", nhs_number=PATIENT, reason="trauma call"
        )

    scan_alerts()

    assert kinds("RAA") == kinds("RBB") == ["emergency_override"]
    alert = AuditAlert.objects.get(trust="RAA")
    assert alert.severity == "high"
    assert alert.nhs_number == PATIENT
    assert sorted(m.to[0] for m in mail.outbox) == [ada.email, ida.email]
    assert all(PATIENT not in m.body and "999 000 0018" not in m.body for m in mail.outbox)
    assert f"/audit/alerts/{alert.pk}/" in next(m.body for m in mail.outbox if m.to == [ada.email])


def test_a_trust_with_no_ig_officer_has_its_alerts_sent_to_the_regional_administrators(rita, trust_b):
    with at(WEEKDAY_MORNING):
        catalogue.EMERGENCY_OVERRIDE.record(actor=SYSTEM, trust="RBB", reason="break glass")

    alerts.scan()

    assert [m.to for m in mail.outbox] == [[rita.email]]


def test_an_ig_officer_elsewhere_who_is_a_clinician_here_gets_none_of_this_trusts_alerts(
    trust_a, trust_b, ada, ida, rita
):
    """Who is told is decided per membership: IG officer at A and clinician at B is not B's IG officer."""
    ivy = grant(grant(make_user("ivy@a.example"), trust_a, Role.IG_OFFICER), trust_b, Role.CLINICIAN)
    with at(WEEKDAY_MORNING):
        catalogue.EMERGENCY_OVERRIDE.record(actor=SYSTEM, trust="RBB", reason="break glass")

    alerts.scan()

    assert [m.to for m in mail.outbox] == [[ida.email]]
    assert ivy.email not in alerts.recipients("RBB")
    assert sorted(alerts.recipients("RAA")) == sorted([ada.email, ivy.email])


def test_without_an_ig_officer_a_trusts_alerts_go_to_the_regional_administrators_not_to_officers_elsewhere(
    trust_a, trust_b, rita
):
    grant(grant(make_user("ivy@a.example"), trust_a, Role.IG_OFFICER), trust_b, Role.CLINICIAN)
    with at(WEEKDAY_MORNING):
        catalogue.EMERGENCY_OVERRIDE.record(actor=SYSTEM, trust="RBB", reason="break glass")

    alerts.scan()

    assert [m.to for m in mail.outbox] == [[rita.email]]


# --- share links ---------------------------------------------------------------------------------------


def share_link_use(ip: str) -> None:
    request = RequestFactory().get("/s/abc", REMOTE_ADDR=ip)
    actor = share_link_actor(request, link_id=42, label="consultant@elsewhere.example")
    catalogue.SHARE_LINK_VIEWED.record(actor=actor, trust="RAA", study_uids=[STUDY])


def test_a_share_link_used_from_more_addresses_than_allowed_alerts(ada, settings):
    settings.AUDIT_ALERT_SHARE_LINK_MAX_IPS = 3
    with at(WEEKDAY_MORNING):
        for ip in ("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.1"):
            share_link_use(ip)
    alerts.scan()
    assert kinds() == []

    with at(WEEKDAY_MORNING):
        share_link_use("198.51.100.77")
    alerts.scan()

    alert = AuditAlert.objects.get(kind="share_link_many_ips")
    assert alert.trust == "RAA"
    assert alert.detail["addresses"] == ["192.0.2.1", "192.0.2.2", "192.0.2.3", "198.51.100.77"]
    assert alert.detail["share_link"] == "share_link:42"


# --- bulk searching -------------------------------------------------------------------------------------


def test_more_searches_in_an_hour_than_the_threshold_alerts(alice, ada, settings):
    settings.AUDIT_ALERT_SEARCHES_PER_HOUR = 5
    with at(WEEKDAY_MORNING):
        for _ in range(5):
            catalogue.STUDY_SEARCH.record(actor=staff(alice), trust="RAA")
    alerts.scan()
    assert kinds() == []

    with at(WEEKDAY_MORNING):
        catalogue.STUDY_SEARCH.record(actor=staff(alice), trust="RAA")
    alerts.scan()

    alert = AuditAlert.objects.get(kind="bulk_search")
    assert (alert.trust, alert.subject_user_id) == ("RAA", alice.pk)
    assert alert.detail["searches_in_hour"] == 6


def test_pull_requests_do_not_count_as_searches(alice, settings):
    settings.AUDIT_ALERT_SEARCHES_PER_HOUR = 1
    with at(WEEKDAY_MORNING):
        for _ in range(3):
            catalogue.REQUEST_CREATED.record(
                actor=staff(alice), trust="RBB", peer_trust="RAA", nhs_number=PATIENT, reason="follow-up"
            )

    alerts.scan()

    assert "bulk_search" not in kinds()


# --- out of hours -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 3, 4, 10, 0, tzinfo=LONDON), False),
        (datetime(2026, 3, 4, 23, 30, tzinfo=LONDON), True),
        (datetime(2026, 3, 4, 7, 59, tzinfo=LONDON), True),
        (datetime(2026, 3, 7, 11, 0, tzinfo=LONDON), True),  # Saturday
    ],
)
def test_access_out_of_hours_alerts(alice, moment, expected):
    with at(moment):
        catalogue.STUDY_VIEWED.record(actor=staff(alice), trust="RAA", nhs_number=PATIENT, study_uids=[STUDY])

    alerts.scan()

    assert ("out_of_hours" in kinds()) is expected


def test_a_bank_holiday_is_out_of_hours(alice, settings):
    settings.AUDIT_HOLIDAYS = frozenset({date(2026, 3, 4)})
    with at(WEEKDAY_MORNING):
        catalogue.STUDY_VIEWED.record(actor=staff(alice), trust="RAA", nhs_number=PATIENT, study_uids=[STUDY])

    alerts.scan()

    assert kinds() == ["out_of_hours"]


def test_one_out_of_hours_alert_per_person_per_night_however_many_accesses(alice):
    night = datetime(2026, 3, 4, 23, 0, tzinfo=LONDON)
    for minute in range(4):
        with at(night.replace(minute=minute)):
            catalogue.STUDY_VIEWED.record(actor=staff(alice), trust="RAA", nhs_number=PATIENT, study_uids=[STUDY])
        alerts.scan()

    alert = AuditAlert.objects.get(kind="out_of_hours")
    assert alert.event_count == 4


def test_the_out_of_hours_rule_can_be_switched_off(alice, settings):
    settings.AUDIT_ALERT_OUT_OF_HOURS = False
    with at(datetime(2026, 3, 4, 23, 30, tzinfo=LONDON)):
        catalogue.STUDY_VIEWED.record(actor=staff(alice), trust="RAA", nhs_number=PATIENT, study_uids=[STUDY])

    alerts.scan()

    assert kinds() == []


# --- access with no relationship ---------------------------------------------------------------------------


def test_viewing_another_trusts_images_with_no_transfer_request_or_link_alerts_both_trusts(bob, ada, ida):
    with at(WEEKDAY_MORNING):
        catalogue.STUDY_VIEWED.record(actor=staff(bob), trust="RAA", nhs_number=PATIENT, study_uids=[STUDY])

    alerts.scan()

    assert kinds("RAA") == kinds("RBB") == ["unrelated_access"]
    alert = AuditAlert.objects.get(trust="RAA")
    assert alert.subject_user_id == bob.pk
    assert alert.detail["holding_trust"] == "RAA"


@pytest.mark.parametrize(
    "relationship",
    [
        lambda: catalogue.REQUEST_CREATED.record(
            actor=SYSTEM, trust="RAA", peer_trust="RBB", nhs_number=PATIENT, reason="follow-up"
        ),
        lambda: catalogue.PUSH_REQUESTED.record(
            actor=SYSTEM, trust="RAA", peer_trust="RBB", study_uids=[STUDY], reason="MDT"
        ),
        lambda: catalogue.EMERGENCY_AUTO_APPROVAL.record(
            actor=SYSTEM, trust="RAA", peer_trust="RBB", nhs_number=PATIENT, reason="trauma"
        ),
    ],
    ids=["request", "push", "emergency approval"],
)
def test_a_request_push_or_approval_involving_their_trust_justifies_the_access(bob, relationship):
    with at(WEEKDAY_MORNING):
        relationship()
        catalogue.STUDY_VIEWED.record(actor=staff(bob), trust="RAA", nhs_number=PATIENT, study_uids=[STUDY])

    alerts.scan()

    assert "unrelated_access" not in kinds()


def test_a_relationship_about_another_patient_does_not_justify_it(bob):
    with at(WEEKDAY_MORNING):
        catalogue.PUSH_REQUESTED.record(
            actor=SYSTEM, trust="RAA", peer_trust="RBB", study_uids=[OTHER_STUDY], reason="MDT"
        )
        catalogue.STUDY_VIEWED.record(actor=staff(bob), trust="RAA", nhs_number=PATIENT, study_uids=[STUDY])

    alerts.scan()

    assert "unrelated_access" in kinds()


def test_viewing_your_own_trusts_images_needs_no_relationship(alice):
    with at(WEEKDAY_MORNING):
        catalogue.STUDY_VIEWED.record(actor=staff(alice), trust="RAA", nhs_number=PATIENT, study_uids=[STUDY])

    alerts.scan()

    assert kinds() == []


# --- the scan, deduplication, acknowledgement ----------------------------------------------------------------


def test_each_event_is_looked_at_once_and_alerts_are_not_duplicated(bob):
    with at(WEEKDAY_MORNING):
        catalogue.STUDY_VIEWED.record(actor=staff(bob), trust="RAA", nhs_number=PATIENT, study_uids=[STUDY])
    first = alerts.scan()
    second = alerts.scan()

    assert len(first.created) == 2
    assert second.created == [] and second.updated == 0
    assert AuditAlert.objects.count() == 2


def test_a_rule_firing_again_reopens_an_acknowledged_alert_without_another_email(bob, ada):
    with at(WEEKDAY_MORNING):
        catalogue.STUDY_VIEWED.record(actor=staff(bob), trust="RAA", nhs_number=PATIENT, study_uids=[STUDY])
    alerts.scan()
    alert = AuditAlert.objects.get(trust="RAA")
    api_as(ada).post(f"/api/v1/audit-alerts/{alert.pk}/acknowledge/", {"note": "checked with bob"}, format="json")
    sent = len(mail.outbox)

    with at(WEEKDAY_MORNING):
        catalogue.STUDY_VIEWED.record(actor=staff(bob), trust="RAA", nhs_number=PATIENT, study_uids=[STUDY])
    alerts.scan()

    alert.refresh_from_db()
    assert alert.status == "open"
    assert alert.event_count == 2
    assert len(mail.outbox) == sent


def test_an_ig_officer_acknowledges_their_trusts_alert_and_that_is_recorded(ada, bob):
    with at(WEEKDAY_MORNING):
        catalogue.STUDY_VIEWED.record(actor=staff(bob), trust="RAA", nhs_number=PATIENT, study_uids=[STUDY])
    alerts.scan()
    alert = AuditAlert.objects.get(trust="RAA")

    response = api_as(ada).post(
        f"/api/v1/audit-alerts/{alert.pk}/acknowledge/", {"note": "legitimate: patient transferred by ambulance"}
    )

    assert response.status_code == 200
    assert response.json()["status"] == "acknowledged"
    (ack,) = events(event_type="IEP163")
    assert (ack.event_id, ack.action, ack.actor_user_id) == ("110101", "U", ada.pk)
    assert ack.reason == "legitimate: patient transferred by ambulance"


def test_an_ig_officer_of_another_trust_neither_sees_nor_acknowledges_it(ida, bob, trust_a):
    with at(WEEKDAY_MORNING):
        catalogue.STUDY_VIEWED.record(actor=staff(bob), trust="RAA", nhs_number=PATIENT, study_uids=[STUDY])
    alerts.scan()
    theirs = AuditAlert.objects.get(trust="RAA")
    client = api_as(ida)

    listed = {a["id"] for a in client.get("/api/v1/audit-alerts/").json()["results"]}
    acknowledged = client.post(f"/api/v1/audit-alerts/{theirs.pk}/acknowledge/", {"note": "x"})

    assert theirs.pk not in listed
    assert acknowledged.status_code == 404
    assert signed_in(ida).get(f"/audit/alerts/{theirs.pk}/").status_code == 404


def test_a_region_wide_alert_reaches_regional_administrators_only(ada, rita):
    alerts.raise_alert(kind="chain_broken", trust="", key="chain_broken:test", summary="broken")

    assert api_as(ada).get("/api/v1/audit-alerts/").json()["results"] == []
    assert len(api_as(rita).get("/api/v1/audit-alerts/").json()["results"]) == 1


def test_an_alert_whose_email_failed_is_sent_at_the_next_scan(ada, bob):
    with at(WEEKDAY_MORNING):
        catalogue.STUDY_VIEWED.record(actor=staff(bob), trust="RAA", nhs_number=PATIENT, study_uids=[STUDY])
    with mock.patch("audit.alerts.send_mail", side_effect=ConnectionRefusedError("mail server down")):
        alerts.scan()
    assert mail.outbox == []
    assert AuditAlert.objects.filter(notified_at__isnull=True).count() == 2

    alerts.scan()

    # Trust B has neither an IG officer nor, in this test, a regional administrator to tell.
    assert sorted(m.to[0] for m in mail.outbox) == [ada.email]
    assert AuditAlert.objects.filter(trust="RAA", notified_at__isnull=False).exists()
