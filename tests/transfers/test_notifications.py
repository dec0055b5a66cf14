"""Emails when a transfer ends: the requester on completed / completed with errors / failed; the destination
trust's imaging managers when images arrive. Django's locmem outbox in this process; the console backend's
output in a real worker's log."""

from __future__ import annotations

import pytest
from django.core import mail

from accounts.roles import Role
from directory.models import SharingAgreement
from tests.helpers import grant, make_user
from transfers import engine, services
from transfers.models import InstanceState, Status, Transfer, TransferInstance

from .conftest import STUDY
from .peers import orthanc_gateway, sop_uids_held

pytestmark = pytest.mark.django_db


@pytest.fixture
def transfer(alice, bea, trust_a, trust_b, cget_gateway_a, cget_gateway_b, agreement) -> Transfer:
    transfer = services.transfer_create(
        source=trust_a,
        destination=trust_b,
        study_instance_uids=[STUDY],
        priority="urgent",
        reason="Head injury, neurosurgical opinion",
        requested_by=alice,
    )
    for n in range(3):
        TransferInstance.objects.create(
            transfer=transfer, sop_instance_uid=f"{STUDY}.{n}", study_instance_uid=STUDY, state=InstanceState.STORED
        )
    Transfer.objects.filter(pk=transfer.pk).update(lease_owner="w", status=Status.VERIFYING)
    transfer.refresh_from_db()
    return transfer


def finish(transfer: Transfer, capture) -> str:
    with capture(execute=True):
        return engine.finish(transfer, "w")


def to(address: str) -> list[mail.EmailMessage]:
    return [m for m in mail.outbox if m.to == [address]]


def test_the_requester_and_the_destination_managers_hear_of_a_completed_transfer(
    transfer, django_capture_on_commit_callbacks
):
    assert finish(transfer, django_capture_on_commit_callbacks) == Status.COMPLETED

    (mine,) = to("alice@a.example")
    assert f"Transfer {transfer.pk} completed" in mine.subject and "RAA to RBB" in mine.subject
    assert "All 3 images" in mine.body and f"/transfers/{transfer.pk}/" in mine.body
    (arrival,) = to("bea@b.example")
    assert f"Images arrived from RAA: transfer {transfer.pk}" in arrival.subject
    assert "3 images" in arrival.body and "filed against the right patient" in arrival.body
    assert len(mail.outbox) == 2


def test_partly_sent_says_how_many_failed(transfer, django_capture_on_commit_callbacks):
    transfer.instances.filter(sop_instance_uid=f"{STUDY}.0").update(state=InstanceState.FAILED, last_error="refused")

    assert finish(transfer, django_capture_on_commit_callbacks) == Status.COMPLETED_WITH_ERRORS

    (mine,) = to("alice@a.example")
    assert "completed with errors" in mine.subject and "2 of 3 images" in mine.body and "1 could not" in mine.body
    (arrival,) = to("bea@b.example")
    assert "1 of 3 could not be sent" in arrival.body


def test_a_failed_transfer_tells_the_requester_why_and_nobody_at_the_destination(
    transfer, django_capture_on_commit_callbacks
):
    transfer.instances.update(state=InstanceState.PENDING)
    with django_capture_on_commit_callbacks(execute=True):
        engine.fail(transfer.pk, "BETA_EDGE refused the association")

    (mine,) = mail.outbox
    assert mine.to == ["alice@a.example"]
    assert f"Transfer {transfer.pk} failed" in mine.subject and "refused the association" in mine.body
    # Failing twice (a late task) sends nothing more.
    with django_capture_on_commit_callbacks(execute=True):
        engine.fail(transfer.pk, "again")
    assert len(mail.outbox) == 1


def test_no_email_for_a_cancelled_transfer_or_before_the_change_commits(
    transfer, alice, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        engine.finish(transfer, "w")
    assert mail.outbox == [] and len(callbacks) == 1  # sent only once the final state is committed
    mail.outbox.clear()

    Transfer.objects.filter(pk=transfer.pk).update(status=Status.CANCELLED)
    from transfers import notifications

    assert notifications.transfer_finished(transfer.pk) == 0
    assert mail.outbox == []


def test_managers_of_other_trusts_and_inactive_managers_are_not_told(
    transfer, amir, trust_b, django_capture_on_commit_callbacks
):
    gone = grant(make_user("gone@b.example"), trust_b, Role.IMAGING_MANAGER)
    gone.is_active = False
    gone.save()
    second = grant(make_user("bill@b.example"), trust_b, Role.IMAGING_MANAGER)

    finish(transfer, django_capture_on_commit_callbacks)

    recipients = sorted(m.to[0] for m in mail.outbox)
    assert recipients == ["alice@a.example", "bea@b.example", second.email]


def test_a_mail_server_failure_does_not_undo_the_finished_transfer(
    transfer, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 1

    assert finish(transfer, django_capture_on_commit_callbacks) == Status.COMPLETED
    assert Transfer.objects.get(pk=transfer.pk).status == Status.COMPLETED


@pytest.mark.interop
def test_a_real_move_emails_the_requester_and_the_destination(
    pacs_pair, ct_study, alice, bea, trust_a, trust_b, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.SPOOL_DIR = tmp_path / "spool"
    SharingAgreement.objects.create(trust_a=trust_a, trust_b=trust_b)
    orthanc_gateway(trust_a, pacs_pair[0])
    orthanc_gateway(trust_b, pacs_pair[1])
    pacs_pair[1].delete_study(ct_study.uid)
    transfer = services.transfer_create(
        source=trust_a,
        destination=trust_b,
        study_instance_uids=[ct_study.uid],
        priority="trauma",
        reason="Trauma transfer",
        requested_by=alice,
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert engine.run(transfer.pk, owner="test") == Status.COMPLETED

    assert len(sop_uids_held(pacs_pair[1], ct_study.uid)) == len(ct_study.paths)
    assert sorted(m.to[0] for m in mail.outbox) == ["alice@a.example", "bea@b.example"]
    assert f"All {len(ct_study.paths)} images" in to("alice@a.example")[0].body
