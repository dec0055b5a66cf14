"""The admin shows the audit trail read-only to regional administrators, and records that it did."""

from __future__ import annotations

import pytest

from accounts.models import User
from audit import catalogue
from audit.context import SYSTEM
from audit.models import AuditEvent
from tests.helpers import signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def event(db):
    return catalogue.STUDY_VIEWED.record(actor=SYSTEM, trust="RAA", nhs_number="9990000018", study_uids=["1.2.3"])


def test_regional_administrators_read_events_in_the_admin_and_that_is_recorded(rita, event):
    client = signed_in(rita)

    listing = client.get("/admin/audit/auditevent/")
    detail = client.get(f"/admin/audit/auditevent/{event.pk}/change/")

    assert listing.status_code == detail.status_code == 200
    reads = AuditEvent.objects.filter(event_id="110101", actor_user=rita).order_by("seq")
    assert [r.detail["via"] for r in reads] == ["admin", "admin"]
    assert reads.last().nhs_number == "9990000018"


def test_nobody_can_add_change_or_delete_events_in_the_admin(rita, event):
    client = signed_in(rita)

    assert client.get("/admin/audit/auditevent/add/").status_code == 403
    assert client.post(f"/admin/audit/auditevent/{event.pk}/change/", {"reason": "x"}).status_code == 403
    assert client.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    bulk = client.post(
        "/admin/audit/auditevent/", {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"}
    )
    assert bulk.status_code in (200, 302, 403)
    assert AuditEvent.objects.get(pk=event.pk).hash == event.hash


def test_staff_who_are_not_regional_administrators_cannot_browse_the_trail(ada, event):
    User.objects.filter(pk=ada.pk).update(is_staff=True)
    ada.refresh_from_db()

    assert signed_in(ada).get("/admin/audit/auditevent/").status_code == 403
