"""Timers: an unanswered request is escalated by email to the source trust's approvers once the time its
priority allows has passed (set to a second here), by the Celery beat task, once only."""

from __future__ import annotations

import time

import pytest
from django.conf import settings as django_settings
from django.core import mail

from audit.models import AuditEvent
from pulls.models import PullRequest
from pulls.tasks import escalate_overdue

pytestmark = pytest.mark.django_db


@pytest.fixture
def short_timers(settings):
    settings.REQUEST_ESCALATE_AFTER = {"trauma": 1, "urgent": 1, "routine": 3600}


def test_beat_runs_the_escalation_task():
    entry = django_settings.CELERY_BEAT_SCHEDULE["pulls-escalate-overdue"]
    assert entry["task"] == escalate_overdue.name == "pulls.escalate_overdue"


def test_an_unanswered_request_is_escalated_to_the_source_approvers_after_the_configured_time(
    short_timers, pending, amir, alice, bob, ada, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        assert escalate_overdue() == 0  # not yet: the request is younger than a second
    assert mail.outbox == []

    time.sleep(1.1)
    with django_capture_on_commit_callbacks(execute=True):
        assert escalate_overdue() == 1

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert sorted(message.to) == ["alice@a.example", "amir@a.example"]  # approvers, not the IG officer
    assert "Overdue" in message.subject and f"/requests/{pending.pk}/" in message.body
    assert pending.nhs_number not in message.body
    pending.refresh_from_db()
    assert pending.escalated_at is not None and pending.status == "pending"
    assert AuditEvent.objects.filter(event_id="110112", detail__request=pending.pk, action="U").count() == 1

    with django_capture_on_commit_callbacks(execute=True):
        assert escalate_overdue() == 0  # once only
    assert len(mail.outbox) == 1


def test_a_routine_request_waits_longer(short_timers, pending, amir):
    PullRequest.objects.filter(pk=pending.pk).update(priority="routine")
    time.sleep(1.1)
    assert escalate_overdue() == 0
    assert mail.outbox == []


def test_a_decided_request_is_not_escalated(short_timers, pending, amir):
    PullRequest.objects.filter(pk=pending.pk).update(status="declined", decline_reason="Not ours")
    time.sleep(1.1)
    assert escalate_overdue() == 0
