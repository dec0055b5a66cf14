"""Issue #19: a home page of what waits for each role; the NHS design system's patterns and the
consistency and accessibility defects found by a new user. Each test names the defect it guards against."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from audit.models import AuditAlert
from pulls.models import PullRequest
from reconciliation.models import StudyReconciliation
from tests.helpers import signed_in
from transfers import services as transfer_services
from transfers import tasks as transfer_tasks
from transfers.models import Status, Transfer

pytestmark = pytest.mark.django_db


@pytest.fixture
def waiting(trust_a, trust_b, gateway_a, gateway_b, agreement, alice, bob, monkeypatch):
    monkeypatch.setattr(transfer_tasks, "enqueue", lambda transfer_id, queue: None)
    pull = PullRequest.objects.create(
        requesting_trust=trust_b,
        source_trust=trust_a,
        requested_by=bob,
        nhs_number="9434765919",
        family_name="Khan",
        given_name="Priya",
        birth_date="1992-12-30",
        sex="F",
        reason="Follow-up",
    )
    transfer = Transfer.objects.create(
        source=trust_b,
        destination=trust_a,
        source_gateway=gateway_b,
        destination_gateway=gateway_a,
        study_instance_uids=["1.2.3"],
        reason="Review",
        requested_by=alice,
        status=Status.AWAITING_RECONCILIATION,
    )
    held = StudyReconciliation.objects.create(
        transfer=transfer,
        destination=trust_a,
        study_instance_uid="1.2.3",
        outcome="held",
        hold_reason="no_match",
        nhs_number="9434765919",
        patient_name="Khan^Priya",
        birth_date="19921230",
    )
    return pull, held


def counts(html: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r'data-testid="count-(\w+)"><strong>(\d+)</strong>', html)}


def test_everyone_lands_on_their_own_work_not_the_directory(alice, amir, ada, waiting):
    """Everyone landed on the trust directory, with no word of what waited for them."""
    pull, held = waiting
    clinician = signed_in(alice).get("/").content.decode()
    assert counts(clinician)["to_approve"] == 1 and f'href="/requests/{pull.pk}/"' in clinician
    manager = signed_in(amir).get("/").content.decode()
    assert counts(manager)["to_reconcile"] == 1 and f'href="/reconciliation/{held.pk}/"' in manager
    AuditAlert.objects.create(
        kind="emergency_override",
        trust="RAA",
        dedupe_key="x",
        summary="Emergency access to a patient's images",
        first_seen=timezone.now(),
        last_seen=timezone.now(),
    )
    officer = signed_in(ada).get("/").content.decode()
    assert counts(officer) == {"alerts": 1} and "Emergency access" in officer
    assert signed_in(alice).get("/directory/").status_code == 200


def test_a_request_says_where_it_stands_through_to_arrival_and_who_acts_next(bob, waiting, gateway_a, gateway_b):
    """Requests stopped at "Approved" for ever: no "arriving", "arrived", "awaiting reconciliation"."""
    pull, _ = waiting
    client = signed_in(bob)
    assert "Waiting for approval" in client.get(f"/requests/{pull.pk}/").content.decode()
    transfer = Transfer.objects.create(
        source=pull.source_trust,
        destination=pull.requesting_trust,
        source_gateway=gateway_a,
        destination_gateway=gateway_b,
        study_instance_uids=["1.2.9"],
        reason="x",
        requested_by=bob,
    )
    PullRequest.objects.filter(pk=pull.pk).update(status="approved", transfer=transfer)
    stages = {
        Status.SENDING: "Approved, images on their way",
        Status.AWAITING_RECONCILIATION: "Arrived, being matched to a patient",
        Status.COMPLETED: "Arrived",
    }
    for status, label in stages.items():
        Transfer.objects.filter(pk=transfer.pk).update(status=status)
        page = client.get(f"/requests/{pull.pk}/").content.decode()
        assert re.search(r'data-stage="\w+">' + re.escape(label) + "<", page), (status, label)
        home = client.get("/").content.decode()
        assert re.search(r'data-stage="\w+">' + re.escape(label) + "<", home), (status, label)
    assert "Who acts next" in page


def test_the_request_form_preselects_no_sex_and_asks_dates_in_three_boxes(bob, waiting):
    """The request form preselected Sex = Male; its dates were browser date pickers."""
    html = signed_in(bob).get("/requests/new/").content.decode()
    sex = re.findall(r'<input class="nhsuk-radios__input"[^>]*name="sex"[^>]*>', html)
    assert len(sex) == 4 and not any("checked" in radio for radio in sex)
    assert 'type="date"' not in html and 'name="birth_date_day"' in html


def test_radios_sit_in_a_fieldset_with_a_legend(bob, waiting):
    """Radios had no fieldset or legend."""
    html = signed_in(bob).get("/requests/new/").content.decode()
    for legend in ("Sex", "Priority"):
        assert re.search(r'<fieldset class="nhsuk-fieldset"[^>]*>\s*<legend[^>]*>' + legend + "</legend>", html)


def test_aria_describedby_points_only_at_ids_that_exist(alice, bob, waiting, gateway_a):
    """`aria-describedby` pointed at ids that did not exist (search, push, request forms)."""
    gateway_a.retrieve_method = "c-get"
    gateway_a.save()
    pages = [
        signed_in(alice).get("/trusts/RAA/studies/", {"nhs_number": "12", "search": "1"}),
        signed_in(alice).post("/trusts/RAA/transfers/new/", {"study_instance_uids": ["1.2.3"], "step": "review"}),
        signed_in(bob).post("/requests/new/", {"nhs_number": "1"}),
    ]
    for response in pages:
        html = response.content.decode()
        ids = set(re.findall(r'\bid="([^"]+)"', html))
        described = [i for value in re.findall(r'aria-describedby="([^"]+)"', html) for i in value.split()]
        assert described, response.request["PATH_INFO"]
        assert not [i for i in described if i not in ids], response.request["PATH_INFO"]


def test_every_page_has_a_skip_link_and_a_favicon_served_by_the_portal(alice, client):
    """No skip link; no favicon."""
    html = signed_in(alice).get("/").content.decode()
    assert '<a class="nhsuk-skip-link" href="#maincontent">' in html and 'id="maincontent"' in html
    icon = re.search(r'<link rel="icon" href="([^"]+\.ico)"', html).group(1)
    assert icon.startswith("/static/vendor/nhsuk-frontend/")
    assert b"".join(client.get(icon).streaming_content)[:4] == b"\x00\x00\x01\x00"


def test_the_design_system_is_served_from_our_own_origin(alice, client):
    """nhsuk-frontend from npm, served as our own static files: never a CDN."""
    html = signed_in(alice).get("/").content.decode()
    css = re.search(r'href="(/static/vendor/nhsuk-frontend/[^"]+\.css)"', html).group(1)
    body = b"".join(client.get(css).streaming_content).decode()
    assert ".nhsuk-header" in body and "assets.nhs.uk" not in body and "url(/assets/" not in body
    assert not re.search(r'(src|href)="https?://', html)


def test_destructive_buttons_look_destructive(alice, waiting, gateway_a, gateway_b, trust_a, trust_b):
    """Destructive buttons looked like the others."""
    transfer = transfer_services.transfer_create(
        source=trust_a,
        destination=trust_b,
        study_instance_uids=["1.2.8"],
        priority="routine",
        reason="r",
        requested_by=alice,
    )
    html = signed_in(alice).get(f"/transfers/{transfer.pk}/").content.decode()
    assert re.search(r'class="nhsuk-button nhsuk-button--warning">Cancel transfer', html)


def test_the_sign_in_page_offers_no_sign_up(db):
    """A "sign up" link led to "Sign Up Closed"."""
    html = Client().get("/accounts/login/").content.decode()
    assert "sign up" not in html.lower() and "/accounts/signup/" not in html


def test_an_unknown_address_gets_the_portals_page_even_in_the_demo(alice, settings):
    """Django's debug 404 (with the URL map) in the demo, which runs with DEBUG on."""
    settings.DEBUG = True
    client = signed_in(alice)
    for path in ("/no/such/page/", "/transfers/999999/"):
        response = client.get(path)
        assert response.status_code == 404 and b"Page not found" in response.content
        assert b"URLconf" not in response.content and b"Django tried these URL patterns" not in response.content
    assert client.get("/transfers").status_code == 301 or client.get("/transfers")["Location"] == "/transfers/"


def test_the_demo_names_patients_to_search_for(capsys, settings, alice, trust_a):
    """The demo banner named no demo patient: a newcomer had to read exchange/demo.py."""
    call_command("demo_banner")
    out = capsys.readouterr().out
    assert re.search(r"R0A .*KHAN, Priya 999 \d{3} \d{4}", out)
    settings.DEBUG = True
    trust_a.ods_code = "R0A"
    trust_a.save()
    html = signed_in(alice).get("/trusts/R0A/studies/").content.decode()
    assert 'id="demo-patients"' in html and "KHAN, Priya" in html


def test_the_production_image_collects_the_design_system_with_hashed_names(tmp_path, settings):
    """What the Dockerfile runs: collectstatic with the manifest storage (it refuses a file whose CSS or
    source-map references are missing; nhsuk-frontend's named maps it did not ship with us at first)."""
    from django.contrib.staticfiles.storage import ManifestStaticFilesStorage

    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
    }
    call_command("collectstatic", "--noinput", verbosity=0)
    storage = ManifestStaticFilesStorage(location=tmp_path)
    css = storage.stored_name("vendor/nhsuk-frontend/nhsuk-frontend.min.css")
    assert re.search(r"\.[0-9a-f]{12}\.css$", css)
    assert re.search(r'url\("assets/images/nhsuk-icon-cross\.[0-9a-f]{12}\.svg"\)', (tmp_path / css).read_text())
