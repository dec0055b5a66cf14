"""Purging staged copies (at revocation and by the beat task) and recording a failed SR filing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from directory.models import Gateway
from sharing import staging, tasks
from sharing.models import SecondOpinion, ShareLink
from tests.dicom.orthanc import free_port
from tests.helpers import signed_in
from tests.sharing.conftest import post

pytestmark = pytest.mark.django_db


def test_revoking_deletes_the_staged_copy_at_once(ready_link, alice, django_capture_on_commit_callbacks):
    folder = staging.share_dir(ready_link.link.pk)
    assert any(folder.glob("*.dcm"))
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in(alice).post(f"/share-links/{ready_link.link.pk}/revoke/")
    assert response.status_code == 302
    assert not folder.exists()
    assert ShareLink.objects.get(pk=ready_link.link.pk).purged_at is not None


def test_the_beat_task_purges_expired_links_and_only_those(ready_link, alice, trust_a, ct_files):
    from tests.sharing.conftest import create_link, stage_files

    live = create_link(alice, trust_a, ct_files[0].parent.name)
    stage_files(live.link, ct_files)
    ShareLink.objects.filter(pk=ready_link.link.pk).update(expires_at=timezone.now() - timedelta(minutes=1))

    assert tasks.purge_share_links() == 1

    assert not staging.share_dir(ready_link.link.pk).exists()
    assert any(staging.share_dir(live.link.pk).glob("*.dcm"))
    assert tasks.purge_share_links() == 0  # nothing left to do


def test_another_trusts_user_cannot_see_or_revoke_the_link_page(ready_link, bob):
    client = signed_in(bob)
    assert client.get(f"/share-links/{ready_link.link.pk}/").status_code == 404
    assert client.post(f"/share-links/{ready_link.link.pk}/revoke/").status_code == 404
    assert ShareLink.objects.get(pk=ready_link.link.pk).revoked_at is None


def test_the_creator_sees_every_access(consultant, ready_link, alice, ct_files):
    consultant.get(f"/s/image/{ct_files[0].stem}/0.png", REMOTE_ADDR="192.0.2.44")
    page = signed_in(alice).get(f"/share-links/{ready_link.link.pk}/")
    assert page["Cache-Control"] == "no-store"
    rows = page.content.decode().split('id="accesses"')[1]
    assert "Opened the link" in rows and "Entered the emailed code" in rows and "192.0.2.44" in rows
    # A series by what it is (number, modality, description), not by its UID (issue #19).
    assert "Viewed series 1 (CT" in rows and "1.2.826" not in rows.split("</table>")[0]


def test_a_filing_that_keeps_failing_is_retried_for_the_window_then_recorded_on_the_opinion(consultant, ready_link):
    from celery.exceptions import Retry

    response = post(
        consultant,
        "/s/opinion/",
        {"text": "t", "conclusion": "c", "consultant_name": "Dr O", "registration_number": "GMC1"},
    )
    assert response.status_code == 302
    Gateway.objects.filter(pk=ready_link.link.gateway_id).update(port=free_port())  # nothing listens there
    opinion = SecondOpinion.objects.get()

    with pytest.raises(Retry) as retried:  # a transient GatewayError: the task backs off and tries again
        tasks.file_second_opinion.apply((opinion.pk,), throw=True)
    opinion.refresh_from_db()
    assert opinion.filing_status == "pending" and "refused" in opinion.filing_error.lower()

    # The next try comes after the window (its state travels in the task's message): it gives up, saying why.
    state = retried.value.sig.kwargs["gateway_retry"]
    assert state["failures"] == 1
    long_ago = timezone.now() - timedelta(seconds=settings.GATEWAY_RETRY_WINDOW + 1)
    late = {"since": long_ago.isoformat(), "failures": state["failures"]}
    assert tasks.file_second_opinion.apply((opinion.pk,), {"gateway_retry": late}, throw=True).get() == "failed"

    opinion.refresh_from_db()
    assert opinion.filing_status == "failed" and opinion.filing_attempts == 2
    assert opinion.filing_error.startswith("Gave up after 2 tries over 2.0 h; last error:")
