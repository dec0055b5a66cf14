"""Staging and filing whose worker died go back on the queue (sharing/sweeper.py); live work is left alone.
The real thing (a worker killed with `kill -9` mid-staging and mid-filing) is tests/deployment/test_faults.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from sharing import services, sweeper
from sharing.models import SecondOpinion, ShareLink

from .conftest import create_link

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch) -> list[tuple[str, int]]:
    queued: list[tuple[str, int]] = []
    monkeypatch.setattr(services, "_enqueue_staging", lambda pk: queued.append(("stage", pk)))
    monkeypatch.setattr(services, "_enqueue_filing", lambda pk: queued.append(("file", pk)))
    return queued


def test_staging_silent_for_two_leases_is_sent_again_once_per_two_leases(
    sent, alice, trust_a, source_gateway, settings
):
    settings.TRANSFER_LEASE_SECONDS = 60
    link = create_link(alice, trust_a, "1.2.3").link
    sent.clear()  # its first message, at creation
    now = timezone.now()
    ShareLink.objects.filter(pk=link.pk).update(
        staging_status="staging", staging_heartbeat_at=now - timedelta(seconds=100)
    )
    assert sweeper.sweep(now) == 0  # a worker spoke within two leases: still working

    later = now + timedelta(seconds=30)
    assert sweeper.sweep(later) == 1 and sent == [("stage", link.pk)]
    assert sweeper.sweep(later + timedelta(seconds=60)) == 0  # the new message has its own two leases


def test_staging_that_noted_an_error_is_left_to_its_retry(sent, alice, trust_a, source_gateway, settings):
    settings.TRANSFER_LEASE_SECONDS = 60
    settings.GATEWAY_RETRY_MAX_DELAY = 600
    link = create_link(alice, trust_a, "1.2.3").link
    quiet = timezone.now() - timedelta(seconds=300)
    ShareLink.objects.filter(pk=link.pk).update(staging_heartbeat_at=quiet, staging_error="Busy. Trying again.")
    assert sweeper.sweep() == 0
    ShareLink.objects.filter(pk=link.pk).update(staging_heartbeat_at=quiet - timedelta(seconds=600))
    assert sweeper.sweep() == 1


def test_finished_revoked_or_expired_links_and_filed_opinions_are_left_alone(
    sent, alice, trust_a, source_gateway, settings
):
    settings.TRANSFER_LEASE_SECONDS = 60
    old = timezone.now() - timedelta(hours=1)
    links = [create_link(alice, trust_a, "1.2.3").link for _ in range(3)]
    ShareLink.objects.filter(pk=links[0].pk).update(staging_status="ready")
    ShareLink.objects.filter(pk=links[1].pk).update(revoked_at=old)
    ShareLink.objects.filter(pk=links[2].pk).update(expires_at=old)
    ShareLink.objects.update(created_at=old)
    SecondOpinion.objects.create(link=links[0], text="t", conclusion="c", consultant_name="Dr", filing_status="filed")
    pending = SecondOpinion.objects.create(link=links[0], text="t", conclusion="c", consultant_name="Dr")
    SecondOpinion.objects.update(created_at=old)
    sent.clear()

    assert sweeper.sweep() == 1
    assert sent == [("file", pending.pk)]
