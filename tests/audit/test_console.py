"""The IG officer's console pages: who may open them, what they show, and that reading them is recorded."""

from __future__ import annotations

from unittest import mock

import pytest
from django.test import Client

from audit import alerts, catalogue
from audit.context import SYSTEM, Actor
from audit.models import AuditAlert, AuditEvent
from tests.audit.conftest import OTHER_PATIENT, PATIENT, STUDY, events, raw_sql
from tests.helpers import signed_in

pytestmark = pytest.mark.django_db
PAGES = ["/audit/", "/audit/patients/", "/audit/users/", "/audit/alerts/", "/audit/verify/"]


def staff(user) -> Actor:
    return Actor(type="user", user_id=user.pk, label=user.email, client_ip="10.0.0.1")


@pytest.fixture
def accesses(alice, bob):
    return [
        catalogue.STUDY_VIEWED.record(
            actor=staff(alice), trust="RAA", nhs_number=PATIENT, study_uids=[STUDY], reason="review after fall"
        ),
        catalogue.SHARE_LINK_CREATED.record(
            actor=staff(alice), trust="RAA", nhs_number=PATIENT, study_uids=[STUDY], reason="neuro opinion"
        ),
        catalogue.STUDY_VIEWED.record(actor=staff(bob), trust="RBB", nhs_number=OTHER_PATIENT, study_uids=["1.2.3"]),
    ]


@pytest.mark.parametrize("page", PAGES)
def test_ig_officers_and_regional_administrators_open_every_page(ada, rita, page):
    assert signed_in(ada).get(page).status_code == 200
    assert signed_in(rita).get(page).status_code == 200


@pytest.mark.parametrize("page", PAGES)
def test_other_staff_are_refused_and_strangers_sent_to_sign_in(alice, page):
    assert signed_in(alice).get(page).status_code == 403
    assert Client().get(page)["Location"].startswith("/accounts/login/")


def test_the_audit_link_shows_for_ig_officers_only(ada, alice):
    assert 'href="/audit/"' in signed_in(ada).get("/").content.decode()
    assert 'href="/audit/"' not in signed_in(alice).get("/").content.decode()


def test_the_patient_access_report_shows_who_when_and_why(ada, alice, accesses):
    page = signed_in(ada).get("/audit/patients/", {"nhs_number": "999 000 0018"}).content.decode()

    assert "999 000 0018" in page
    assert alice.email in page
    assert "review after fall" in page
    assert "neuro opinion" in page
    assert "1.2.3" not in page
    report = events(event_id="110101", actor_user=ada)[-1]
    assert report.nhs_number == PATIENT
    assert report.detail["report"] == "patient access"


def test_the_patient_access_report_of_another_trust_shows_nothing_of_trust_a(ida, accesses):
    page = signed_in(ida).get("/audit/patients/", {"nhs_number": PATIENT}).content.decode()

    assert "review after fall" not in page
    assert "No recorded access" in page


def test_a_mistyped_nhs_number_is_explained(ada):
    response = signed_in(ada).get("/audit/patients/", {"nhs_number": "999 000 0019"})

    assert response.status_code == 400
    assert "check digit" in response.content.decode()


def test_the_user_activity_report(ada, alice, accesses):
    page = signed_in(ada).get("/audit/users/", {"user": alice.email}).content.decode()

    assert "DICOM Instances Accessed" in page
    assert "2 events" in page or "events" in page
    assert "review after fall" in page


def test_the_search_page_filters_and_pages(ada, accesses):
    page = signed_in(ada).get("/audit/", {"event_id": "110106"}).content.decode()

    assert "neuro opinion" in page
    assert "review after fall" not in page


def test_the_console_exports_and_records_it(ada, accesses):
    response = signed_in(ada).get("/audit/patients/", {"nhs_number": PATIENT, "format": "fhir"})

    assert response["Content-Type"].startswith("application/fhir+json")
    assert "AuditEvent" in b"".join(response.streaming_content).decode()
    export = events(event_id="110106", actor_user=ada)[-1]
    assert export.detail == {"report": "patient access", "format": "fhir", "filters": {"nhs_number": PATIENT}}


def test_an_event_page_says_whether_its_hash_checks_out(ada, accesses):
    client = signed_in(ada)
    seq = accesses[0].seq
    assert "hash checks out" in client.get(f"/audit/events/{seq}/").content.decode()

    raw_sql("UPDATE audit_auditevent SET reason = 'edited' WHERE seq = %s", [seq])

    assert "does not match" in client.get(f"/audit/events/{seq}/").content.decode()


def test_another_trusts_event_page_is_not_found(ida, accesses):
    assert signed_in(ida).get(f"/audit/events/{accesses[0].seq}/").status_code == 404


def test_an_alert_is_acknowledged_in_the_console_with_a_note(ada, bob):
    catalogue.STUDY_VIEWED.record(actor=staff(bob), trust="RAA", nhs_number=PATIENT, study_uids=[STUDY])
    alerts.scan(notify_officers=False)
    alert = AuditAlert.objects.get(trust="RAA", kind="unrelated_access")
    client = signed_in(ada)

    assert "Access with no transfer" in client.get("/audit/alerts/").content.decode()
    empty = client.post(f"/audit/alerts/{alert.pk}/", {"note": ""})
    done = client.post(f"/audit/alerts/{alert.pk}/", {"note": "spoke to bob: wrong patient opened"})

    assert empty.status_code == 200
    assert done.status_code == 302
    alert.refresh_from_db()
    assert (alert.status, alert.acknowledged_by_id) == ("acknowledged", ada.pk)


def test_checking_the_chain_from_the_console(ada, accesses):
    response = signed_in(ada).post("/audit/verify/", {"scope": "new"}, follow=True)

    assert "The chain is intact" in response.content.decode()
    assert AuditEvent.objects.filter(event_type="IEP161", actor_user=ada).exists()


def test_a_whole_chain_walk_from_the_console_runs_in_the_background(ada, accesses, django_capture_on_commit_callbacks):
    from audit.tasks import verify_chain_fully

    with (
        mock.patch.object(verify_chain_fully, "delay", side_effect=lambda: verify_chain_fully()) as queued,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = signed_in(ada).post("/audit/verify/", {"scope": "full"}, follow=True)

    assert queued.called
    assert "being verified" in response.content.decode()
    walked = AuditEvent.objects.filter(event_type="IEP161", actor_type="system").get()
    assert walked.detail["ok"] is True and walked.detail["from_seq"] == 1


def test_there_is_no_way_to_change_an_event_from_the_console(ada, accesses):
    client = signed_in(ada)
    seq = accesses[0].seq

    assert client.post(f"/audit/events/{seq}/", {"reason": "x"}).status_code == 405
    assert AuditEvent.objects.get(seq=seq).reason == "review after fall"


def test_the_console_survives_a_forged_cursor(ada, accesses):
    response = signed_in(ada).get("/audit/", {"cursor": "!!!"})

    assert response.status_code == 200
    assert "not valid" in response.content.decode()


def test_actions_of_the_system_are_visible_to_regional_administrators(rita):
    catalogue.AUDIT_LOG_READ.record(actor=SYSTEM, detail={})
    assert "portal" in signed_in(rita).get("/audit/").content.decode()
