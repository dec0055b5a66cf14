"""GET /api/v1/audit-events/ and POST /api/v1/audit-events/verify/ (SPEC section 7)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit import catalogue
from audit.codes import EventID
from audit.context import SYSTEM, Actor
from audit.models import AuditEvent
from tests.audit.conftest import OTHER_PATIENT, OTHER_STUDY, PATIENT, STUDY, raw_sql
from tests.helpers import api_as

pytestmark = pytest.mark.django_db
URL = "/api/v1/audit-events/"


def as_user(user) -> Actor:
    return Actor(type="user", user_id=user.pk, label=user.email, client_ip="10.0.0.1")


@pytest.fixture
def region_events(alice, bob):
    """alice views a patient at A; bob views another at B; a transfer A → B involves both."""
    return {
        "a": catalogue.STUDY_VIEWED.record(actor=as_user(alice), trust="RAA", nhs_number=PATIENT, study_uids=[STUDY]),
        "b": catalogue.STUDY_VIEWED.record(
            actor=as_user(bob), trust="RBB", nhs_number=OTHER_PATIENT, study_uids=[OTHER_STUDY]
        ),
        "ab": catalogue.TRANSFER_COMPLETED.record(
            actor=SYSTEM, trust="RAA", peer_trust="RBB", nhs_number=PATIENT, study_uids=[STUDY]
        ),
    }


def seqs(response) -> set[int]:
    return {row["seq"] for row in response.json()["results"]}


def test_an_ig_officer_sees_only_events_involving_their_trust(ada, region_events):
    response = api_as(ada).get(URL, {"event_id": "110103,110104"})

    assert response.status_code == 200
    assert seqs(response) == {region_events["a"].seq, region_events["ab"].seq}


def test_an_ig_officer_of_b_never_sees_trust_a_events_whatever_they_ask(ida, region_events):
    client = api_as(ida)

    asked_for_a = client.get(URL, {"trust": "RAA", "event_id": "110103"})
    by_patient = client.get(URL, {"nhs_number": PATIENT})
    one_of_a = client.get(f"{URL}{region_events['a'].seq}/")

    assert seqs(asked_for_a) == set()
    assert seqs(by_patient) == {region_events["ab"].seq}  # the transfer to B is B's business too
    assert one_of_a.status_code == 404


def test_a_regional_administrator_sees_every_trust(rita, region_events):
    response = api_as(rita).get(URL, {"event_id": "110103,110104"})

    assert seqs(response) == {e.seq for e in region_events.values()}


@pytest.mark.parametrize("persona", ["alice", "amir", "bob"])
def test_staff_without_an_audit_role_are_refused(persona, request, region_events):
    user = request.getfixturevalue(persona)

    assert api_as(user).get(URL).status_code == 403
    assert api_as(user).post(f"{URL}verify/").status_code == 403


def test_events_come_with_every_field_the_standard_asks_for(ada, region_events):
    row = api_as(ada).get(f"{URL}{region_events['a'].seq}/").json()

    assert row["event_id"] == "110103"
    assert row["event"] == "DICOM Instances Accessed"
    assert row["action"] == "R"
    assert row["outcome"] == 0
    assert row["actor"]["type"] == "user"
    assert row["actor"]["label"] == "alice@a.example"
    assert row["trust"] == "RAA"
    assert row["nhs_number"] == PATIENT
    assert row["study_instance_uids"] == [STUDY]
    assert row["client_ip"] == "10.0.0.1"
    assert len(row["hash"]) == 64


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"nhs_number": "999 000 0018"}, {"a", "ab"}),
        ({"study_instance_uid": STUDY}, {"a", "ab"}),
        ({"user": "alice@a.example"}, {"a"}),
        ({"event_id": "110104"}, {"ab"}),
        ({"trust": "rbb"}, {"b", "ab"}),
    ],
)
def test_search_filters(rita, region_events, params, expected):
    response = api_as(rita).get(URL, {**params, "event_id": params.get("event_id", "110103,110104")})

    assert seqs(response) == {region_events[key].seq for key in expected}


def test_a_date_range_includes_the_whole_last_day(rita, region_events):
    today = timezone.localdate()
    client = api_as(rita)

    inside = client.get(URL, {"since": today.isoformat(), "until": today.isoformat(), "event_id": "110103"})
    before = client.get(URL, {"until": (today - timedelta(days=1)).isoformat()})

    assert len(inside.json()["results"]) == 2
    assert before.json()["results"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"nhs_number": "9990000019"}, "nhs_number"),
        ({"study_instance_uid": "1.2.abc"}, "study_instance_uid"),
        ({"event_id": "110199"}, "event_id"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-02-30"}, "since"),
        ({"until": "2026-02-30T25:00"}, "until"),
        ({"since": "2026-03-02", "until": "2026-03-01"}, "until"),
        ({"cursor": "not-a-cursor"}, "cursor"),
    ],
)
def test_bad_parameters_are_400_with_the_field_named(ada, params, field):
    response = api_as(ada).get(URL, params)

    assert response.status_code == 400
    assert field in response.json()


def test_an_unknown_format_is_not_found(ada):
    assert api_as(ada).get(URL, {"format": "pdf"}).status_code == 404


def test_pages_walk_every_event_once_newest_first(rita):
    for i in range(120):
        catalogue.AUDIT_LOG_READ.record(actor=SYSTEM, detail={"i": i})
    client = api_as(rita)
    expected = list(AuditEvent.objects.filter(event_id="110101").order_by("-seq").values_list("seq", flat=True))

    seen, url, pages = [], f"{URL}?event_id=110101&page_size=50", 0
    while url:
        body = client.get(url).json()
        seen.extend(row["seq"] for row in body["results"])
        url, pages = body["next"], pages + 1

    # Each page read is itself recorded (newer than the cursor, so it never shows on a later page).
    assert seen == expected
    assert pages == 3


def test_nobody_can_change_or_delete_events_through_the_api(rita, region_events):
    client = api_as(rita)
    url = f"{URL}{region_events['a'].seq}/"

    assert client.put(url, {"reason": "x"}, format="json").status_code == 405
    assert client.patch(url, {"reason": "x"}, format="json").status_code == 405
    assert client.delete(url).status_code == 405
    assert client.post(URL, {"event_id": "110103"}, format="json").status_code == 405
    assert AuditEvent.objects.get(pk=region_events["a"].pk).hash == region_events["a"].hash


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [("csv", "text/csv"), ("fhir", "application/fhir+json"), ("dicom", "application/xml")],
)
def test_exports_stream_in_each_format_and_are_recorded(ada, region_events, fmt, content_type):
    response = api_as(ada).get(URL, {"format": fmt, "nhs_number": PATIENT})

    assert response.status_code == 200
    assert response["Content-Type"].startswith(content_type)
    assert "attachment" in response["Content-Disposition"]
    body = b"".join(response.streaming_content).decode()
    assert STUDY in body
    export = AuditEvent.objects.filter(event_id=EventID.EXPORT, actor_user=ada).get()
    assert export.detail["format"] == fmt
    assert export.nhs_number == PATIENT
    used = AuditEvent.objects.filter(event_id=EventID.AUDIT_LOG_USED, actor_user=ada, detail__exported=True).get()
    assert used.detail["format"] == fmt


def test_an_export_with_a_bad_parameter_answers_in_json(ada):
    response = api_as(ada).get(URL, {"format": "csv", "nhs_number": "123"})

    assert response.status_code == 400
    assert "nhs_number" in response.json()


def test_verify_reports_an_intact_chain(ada, region_events):
    response = api_as(ada).post(f"{URL}verify/")

    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["events_checked"] >= 3
    assert body["first_broken_seq"] is None


def test_verify_reports_the_first_broken_link_and_raises_an_alert(ada, rita, region_events):
    raw_sql("UPDATE audit_auditevent SET reason = 'edited' WHERE seq = %s", [region_events["b"].seq])

    body = api_as(ada).post(f"{URL}verify/").json()

    assert body["ok"] is False
    assert body["first_broken_seq"] == region_events["b"].seq
    from audit.models import AuditAlert

    assert AuditAlert.objects.filter(kind="chain_broken", trust="").exists()


def test_the_schema_documents_the_audit_endpoints(ada):
    schema = api_as(ada).get("/api/schema/").content.decode()

    assert "/api/v1/audit-events/verify/" in schema
    assert "study_instance_uid" in schema


def test_verify_can_check_only_what_is_new_since_the_last_digest(ada, region_events, settings, tmp_path):
    settings.AUDIT_DIGEST_DIR = tmp_path
    from audit.digest import export_digest

    digested = export_digest().head_seq
    catalogue.AUDIT_LOG_READ.record(actor=SYSTEM, detail={})

    body = api_as(ada).post(f"{URL}verify/", {"since_last_digest": True}, format="json").json()

    assert body["ok"] is True
    assert body["from_seq"] == digested
    assert body["events_checked"] < body["head_seq"]
