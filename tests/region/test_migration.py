"""Bulk migrations: rules of the service, yielding to clinicians, progress and report (no worker process)."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from audit.context import SYSTEM
from audit.models import AuditEvent
from region import migration
from region.models import MigrationJob, MigrationStudy
from region.selectors import migration_progress
from tests.helpers import api_as, signed_in
from transfers.models import BULK, Priority, Transfer

pytestmark = pytest.mark.django_db


def create(user, source, destination, **values):
    return migration.migration_create(
        name="Old PACS out", source=source, destination=destination, user=user, actor=SYSTEM, **values
    )


def test_only_a_regional_administrator_starts_a_migration(gateway_a, vna, archive_agreements, amir, rita):
    with pytest.raises(PermissionDenied):
        create(amir, gateway_a, vna)

    job = create(rita, gateway_a, vna, allowed_hours="mon-fri 19:00-07:00, sat-sun", max_instances_per_second=20)

    assert job.status == MigrationJob.Status.QUEUED
    assert AuditEvent.objects.filter(event_id="110102", detail__migration=job.pk, detail__change="created").exists()


def test_a_migration_needs_an_agreement_between_different_trusts(gateway_a, vna, rita):
    with pytest.raises(ValidationError, match="agreement"):
        create(rita, gateway_a, vna)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"allowed_hours": "weekdays"}, "allowed_hours"),
        ({"max_instances_per_second": -1}, "max_instances_per_second"),
        ({"date_from": "2026-02-01", "date_to": "2026-01-01"}, "date_to"),
    ],
)
def test_bad_settings_are_refused_by_name(gateway_a, vna, archive_agreements, rita, values, field):
    from datetime import date

    values = {k: date.fromisoformat(v) if k.startswith("date") else v for k, v in values.items()}
    with pytest.raises(ValidationError) as caught:
        create(rita, gateway_a, vna, **values)
    assert field in caught.value.message_dict
    assert not MigrationJob.objects.exists()


@pytest.fixture
def listed_job(gateway_a, vna, archive_agreements, rita) -> MigrationJob:
    job = create(rita, gateway_a, vna)
    MigrationJob.objects.filter(pk=job.pk).update(listed=True)
    for n in range(3):
        MigrationStudy.objects.create(job=job, study_instance_uid=f"1.2.3.{n}", source_instances=10)
    return job


def test_a_migration_stands_aside_between_studies_while_a_clinicians_transfer_waits(
    listed_job, trust_a, trust_b, gateway_a, gateway_b, alice
):
    waiting = Transfer.objects.create(
        source=trust_a,
        destination=trust_b,
        source_gateway=gateway_a,
        destination_gateway=gateway_b,
        study_instance_uids=["1.2.9"],
        priority=Priority.TRAUMA,
        reason="Trauma",
        requested_by=alice,
    )

    outcome = migration.run_slice(listed_job.pk, owner="test-worker")

    listed_job.refresh_from_db()
    assert outcome.status == "yielded" and outcome.again and outcome.again > 0
    assert (listed_job.yields, listed_job.lease_owner) == (1, "")
    assert not listed_job.studies.exclude(state="pending").exists()
    # A background copy waiting is no reason to stand aside.
    Transfer.objects.filter(pk=waiting.pk).update(priority=BULK)
    from region.selectors import clinical_work_waiting

    assert not clinical_work_waiting(listed_job)


def test_a_second_worker_cannot_take_a_job_whose_lease_is_fresh(listed_job):
    migration.claim(listed_job.pk, "worker-1")

    with pytest.raises(migration.Busy):
        migration.claim(listed_job.pk, "worker-2")


def test_a_paused_job_is_not_taken_up_and_resumes_when_asked(listed_job):
    migration.migration_change(job=listed_job, change="pause", actor=SYSTEM)
    assert migration.run_slice(listed_job.pk, owner="w").status == "ended"

    migration.migration_change(job=listed_job, change="resume", actor=SYSTEM)
    listed_job.refresh_from_db()
    assert listed_job.status == MigrationJob.Status.QUEUED


def test_progress_counts_studies_instances_bytes_rate_and_time_left(listed_job):
    first = listed_job.studies.order_by("pk").first()
    MigrationStudy.objects.filter(pk=first.pk).update(state="copied", instances_copied=10, bytes_copied=5_000_000)
    MigrationJob.objects.filter(pk=listed_job.pk).update(copy_seconds=2.0)
    listed_job.refresh_from_db()

    p = migration_progress(listed_job)

    assert (p.studies_total, p.studies_done, p.instances_total, p.instances_done) == (3, 1, 30, 10)
    assert p.instances_per_second == 5.0 and p.eta_seconds == 4
    assert p.gigabytes == pytest.approx(0.005)


@pytest.mark.parametrize(
    ("source", "destination", "expected"),
    [
        ({"1", "2"}, {"1", "2"}, "ok"),
        ({"1", "2"}, set(), "missing"),
        ({"1", "2"}, {"1"}, "count_mismatch"),
        ({"1", "2"}, {"1", "3"}, "hash_mismatch"),
    ],
)
def test_the_verdict_of_one_study(source, destination, expected):
    assert migration.verdict(source, destination) == expected


def test_migrations_are_regional_administrators_business_in_the_api_and_pages(listed_job, rita, amir):
    assert api_as(amir).get("/api/v1/migrations/").status_code == 403
    assert signed_in(amir).get(f"/region/migrations/{listed_job.pk}/").status_code == 403

    body = api_as(rita).get(f"/api/v1/migrations/{listed_job.pk}/").json()
    assert body["progress"]["studies_total"] == 3
    assert signed_in(rita).get(f"/region/migrations/{listed_job.pk}/").status_code == 200
    paused = api_as(rita).post(f"/api/v1/migrations/{listed_job.pk}/pause/")
    assert paused.status_code == 200 and paused.json()["status"] == "paused"


def test_a_regional_administrator_starts_one_through_the_api_and_a_bad_one_is_refused(
    gateway_a, vna, archive_agreements, rita
):
    client = api_as(rita)
    body = {"name": "A to archive", "source": gateway_a.pk, "destination": vna.pk, "allowed_hours": "sat-sun"}

    created = client.post("/api/v1/migrations/", body, format="json")
    refused = client.post("/api/v1/migrations/", {**body, "allowed_hours": "weekends"}, format="json")

    assert created.status_code == 201, created.content
    assert created.json()["status"] == "queued" and created.json()["allowed_hours"] == "sat-sun"
    assert refused.status_code == 400 and "allowed_hours" in refused.json()
    assert MigrationJob.objects.count() == 1
