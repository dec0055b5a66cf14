"""Request pages: the form at the requesting trust, the approval inbox and detail page at the source."""

from __future__ import annotations

import pytest

from pulls.models import PullRequest
from tests.helpers import signed_in
from transfers.models import Transfer

from .conftest import STUDY_1, STUDY_2, candidate

pytestmark = pytest.mark.django_db

FORM = {
    "source_trust": "",
    "nhs_number": "943 476 5919",
    "family_name": "Jones",
    "given_name": "Aoife",
    "birth_date": "1980-02-03",
    "sex": "F",
    "modalities": "CT, MR",
    "priority": "urgent",
    "reason": "Head injury",
}


def test_a_clinician_requests_images_through_the_form(bob, trust_a, agreement, gateway_a):
    client = signed_in(bob)
    assert client.get("/requests/new/").status_code == 200

    response = client.post("/requests/new/", {**FORM, "source_trust": trust_a.pk})

    pull = PullRequest.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/requests/{pull.pk}/"
    assert pull.modalities == ["CT", "MR"] and pull.requested_by == bob
    page = client.get(f"/requests/{pull.pk}/").content.decode()
    assert "could not be searched" in page  # gateway_a does not answer: said, not hidden
    assert "PACS again</button>" in page  # and the requester may ask once it is back

    response = client.post(f"/requests/{pull.pk}/search-again/")

    assert response.status_code == 302 and response["Location"] == f"/requests/{pull.pk}/"
    assert "could not be searched" in PullRequest.objects.get().candidates_error  # still down, still said


def test_the_form_shows_a_bad_nhs_number_and_records_nothing(bob, trust_a, agreement, gateway_a):
    response = signed_in(bob).post("/requests/new/", {**FORM, "source_trust": trust_a.pk, "nhs_number": "9434765918"})
    assert response.status_code == 400
    assert "check digit" in response.content.decode()
    assert not PullRequest.objects.exists()


def test_the_inbox_lists_the_request_with_its_mismatch_flags(pending, amir):
    PullRequest.objects.filter(pk=pending.pk).update(
        candidates=[candidate(STUDY_1), candidate(STUDY_2, birth_date="1980-03-02", mismatches=["birth_date"])]
    )
    client = signed_in(amir)
    listing = client.get("/requests/?direction=incoming").content.decode()
    assert f'href="/requests/{pending.pk}/"' in listing
    page = client.get(f"/requests/{pending.pk}/").content.decode()
    assert "birth date differs" in page and "Approve the ticked studies" in page and "Decline" in page


def test_an_approver_approves_chosen_studies_from_the_page(pending, amir, cget_gateway_a, gateway_b, enqueued):
    response = signed_in(amir).post(f"/requests/{pending.pk}/approve/", {"study_instance_uids": [STUDY_1]})
    assert response.status_code == 302
    pending.refresh_from_db()
    assert pending.status == "approved" and Transfer.objects.get().study_instance_uids == [STUDY_1]


def test_an_approver_declines_from_the_page(pending, alice):
    signed_in(alice).post(f"/requests/{pending.pk}/decline/", {"reason": "No such patient here"})
    pending.refresh_from_db()
    assert pending.status == "declined" and pending.decline_reason == "No such patient here"


def test_the_requester_sees_no_decision_buttons(pending, bob):
    page = signed_in(bob).get(f"/requests/{pending.pk}/").content.decode()
    assert "Approve the ticked studies" not in page


def test_an_outsider_gets_404(pending, carol):
    assert signed_in(carol).get(f"/requests/{pending.pk}/").status_code == 404
    assert (
        signed_in(carol).post(f"/requests/{pending.pk}/approve/", {"study_instance_uids": [STUDY_1]}).status_code == 404
    )


def test_candidates_show_dates_as_people_read_them_and_mark_differences(bea, trust_a, trust_b, alice):
    """ISO dates (`1992-12-30`) sat beside "30 Dec 1992"; differences were words only."""
    from pulls.models import PullRequest

    pull = PullRequest.objects.create(
        requesting_trust=trust_a,
        source_trust=trust_b,
        requested_by=alice,
        nhs_number="9434765919",
        family_name="Khan",
        given_name="Priya",
        birth_date="1992-12-30",
        sex="F",
        reason="Follow-up",
        candidates=[
            {
                "study_instance_uid": "1.2.3",
                "patient_name": "KHAN^PRIYA",
                "birth_date": "1992-12-31",
                "sex": "F",
                "study_date": "2026-03-01",
                "modalities": ["CT"],
                "description": "CT head",
                "mismatches": ["birth_date"],
            }
        ],
    )
    html = signed_in(bea).get(f"/requests/{pull.pk}/").content.decode()
    assert "31 Dec 1992" in html and "1 Mar 2026" in html and "1992-12-31" not in html
    assert 'portal-differs">31 Dec 1992' in html and "30 Dec 1992" in html
