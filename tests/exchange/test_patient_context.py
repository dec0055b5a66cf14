"""Issue #19: patient and study context wherever a study is acted on, against a real (simulated) PACS.
Each test names the defect it guards against."""

from __future__ import annotations

import re

import pytest

from dicomkit.models import OtherPatientID, Study
from exchange.services import local_identity
from tests.helpers import signed_in
from transfers.models import Transfer

from .conftest import NHS_RHYS, NHS_SIOBHAN, RHYS_MRN

pytestmark = pytest.mark.django_db


@pytest.fixture
def push_ready(sim_gateway, trust_b, gateway_b, agreement):
    sim_gateway.retrieve_method = "c-get"
    sim_gateway.save()
    return sim_gateway


def test_the_push_form_names_the_patient_and_the_study_not_only_its_uid(alice, push_ready, studies):
    """The push form showed only the raw Study Instance UID."""
    page = signed_in(alice).post("/trusts/RAA/transfers/new/", {"study_instance_uids": [studies.mr_uid]})
    html = page.content.decode()
    assert "DAVIES, Rhys" in html and "999 000 0026" in html and "20 May 2023" in html
    assert RHYS_MRN in html and "(RAA_MRN)" in html


def test_a_push_is_confirmed_naming_the_patient_and_destination_before_anything_is_sent(
    alice, push_ready, studies, trust_b
):
    client = signed_in(alice)
    data = {
        "study_instance_uids": [studies.mr_uid],
        "destination_trust": trust_b.pk,
        "priority": "urgent",
        "reason": "Neurosurgical opinion",
    }
    review = client.post("/trusts/RAA/transfers/new/", {**data, "step": "review"})
    html = review.content.decode()
    assert review.status_code == 200 and not Transfer.objects.exists()
    assert "You are sending the images of" in html and "DAVIES, Rhys" in html
    assert "Beta District General (RBB)" in html and 'id="confirm-send"' in html
    sent = client.post("/trusts/RAA/transfers/new/", {**data, "step": "send"})
    transfer = Transfer.objects.get()
    assert sent.status_code == 302
    # Kept with the transfer, so its lists and pages name the patient (they named none).
    assert transfer.studies[0]["patient_name"] == "Davies^Rhys" and transfer.studies[0]["nhs_number"] == NHS_RHYS
    listing = client.get("/transfers/").content.decode()
    assert "DAVIES, Rhys" in listing and "999 000 0026" in listing
    assert "DAVIES, Rhys" in client.get(f"/transfers/{transfer.pk}/").content.decode()


def test_the_study_page_offers_send_share_and_view_and_its_back_link_keeps_the_search(alice, push_ready, studies):
    """The study page had no Send or Share button, and its back link dropped the search."""
    client = signed_in(alice)
    results = client.get("/trusts/RAA/studies/", {"nhs_number": NHS_RHYS, "search": "1"}).content.decode()
    link = re.search(r'href="(/trusts/RAA/studies/' + re.escape(studies.mr_uid) + r'/\?[^"]+)"', results).group(1)
    page = client.get(link.replace("&amp;", "&")).content.decode()
    assert "Send to another trust" in page and "Share for a second opinion" in page and "View images" in page
    back = re.search(r'class="nhsuk-back-link__link" href="([^"]+)"', page).group(1)
    assert back.startswith("/trusts/RAA/studies/?") and f"nhs_number={NHS_RHYS}" in back


def test_each_select_box_in_the_results_names_its_study(alice, push_ready, studies):
    """Every checkbox was labelled "Send this study"."""
    html = signed_in(alice).get("/trusts/RAA/studies/", {"family_name": "*", "search": "1"}).content.decode()
    labels = re.findall(r'<span class="nhsuk-u-visually-hidden">(Select [^<]+)</span>', html)
    assert len(labels) == 2 and len(set(labels)) == 2
    assert any("DAVIES, Rhys" in label for label in labels) and "Send this study" not in html


def test_the_search_asks_names_as_people_write_them(alice, push_ready, studies):
    """The help text asked for `Family^Given`; the dates were the browser's own (locale) date pickers."""
    client = signed_in(alice)
    html = client.get("/trusts/RAA/studies/").content.decode()
    assert "Family^Given" not in html and 'type="date"' not in html
    assert 'name="birth_date_day"' in html and 'name="birth_date_year"' in html
    found = client.get(
        "/trusts/RAA/studies/",
        {
            "family_name": "Davies",
            "given_name": "Rhys",
            "birth_date_day": "3",
            "birth_date_month": "11",
            "birth_date_year": "1954",
            "search": "1",
        },
    ).content.decode()
    assert "1 study" in found and "DAVIES, Rhys" in found


def test_local_patient_id_holds_the_trusts_own_id_or_says_there_is_none(alice, push_ready, studies):
    """R0A's search showed R0B's MRN in "Local patient ID" for a study filed under the NHS number."""
    html = signed_in(alice).get("/trusts/RAA/studies/", {"nhs_number": NHS_SIOBHAN, "search": "1"}).content.decode()
    assert "none at RAA" in html
    arrived = Study(
        study_instance_uid="1.2.3",
        patient_id="9990000018",
        issuer_of_patient_id="NHS",
        nhs_number="9990000018",
        other_patient_ids=(OtherPatientID("R0B100003", "R0B_MRN"), OtherPatientID("9990000018", "NHS")),
    )
    assert local_identity(arrived, "R0A_MRN") is None
    kept = Study(
        study_instance_uid="1.2.4",
        patient_id="9990000018",
        issuer_of_patient_id="NHS",
        nhs_number="9990000018",
        other_patient_ids=(OtherPatientID("R0A100037", "R0A_MRN"), OtherPatientID("R0B100003", "R0B_MRN")),
    )
    assert local_identity(kept, "R0A_MRN") == ("R0A100037", "R0A_MRN")


def test_names_and_dates_read_as_people_write_them(alice, push_ready, studies):
    """Raw DICOM (`Khan^Priya`, `19921230`) and ISO dates beside "30 Dec 1992"."""
    from exchange.templatetags.exchange_tags import dicom_date, person_name

    assert person_name("Khan^Priya") == "KHAN, Priya"
    assert person_name("Ó Súilleabháin^Siobhán^^Dr") == "Ó SÚILLEABHÁIN, Siobhán (Dr)"
    assert person_name("Yamada^Tarou=山田^太郎") == "YAMADA, Tarou"
    assert dicom_date("19921230") == dicom_date("1992-12-30") == "30 Dec 1992"
