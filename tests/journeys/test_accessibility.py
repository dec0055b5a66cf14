"""WCAG 2.2 AA: axe-core (bundled by axe-playwright-python) finds no serious or critical violation on any
staff page, for every role, nor on the consultant's pages, in Debian's Chromium. No PACS answers here:
the pages that would ask one show their "did not answer" state, which must be accessible too. The journey
tests check the pages with real images and a real worker."""

from __future__ import annotations

import pytest
from django.core import mail
from django.utils import timezone

from audit.models import AuditAlert, AuditEvent
from pulls.models import PullRequest
from reconciliation.models import StudyReconciliation
from sharing.models import SecondOpinion
from tests.sharing.conftest import create_link, stage_files
from transfers import services as transfer_services
from transfers import tasks as transfer_tasks
from transfers.models import InstanceState, Status, Transfer, TransferInstance

from .support import Journey, session_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

STUDY = "1.2.826.0.1.3680043.8.498.1901"
SUMMARY = {
    "study_instance_uid": STUDY,
    "patient_name": "Khan^Priya",
    "patient_id": "RAA100037",
    "patient_id_issuer": "RAA_MRN",
    "nhs_number": "9434765919",
    "birth_date": "1992-12-30",
    "sex": "F",
    "study_date": "2026-03-01",
    "modalities": ["CT"],
    "description": "CT head",
    "accession_number": "A1",
    "series_count": 1,
    "instance_count": 6,
}


@pytest.fixture
def region(
    settings,
    monkeypatch,
    tmp_path,
    trust_a,
    trust_b,
    gateway_a,
    gateway_b,
    agreement,
    alice,
    amir,
    ada,
    bob,
    bea,
    ct_files,
):
    settings.SPOOL_DIR = tmp_path / "spool"
    settings.SHARE_DIR = settings.SPOOL_DIR / "share"
    from sharing import services as sharing_services

    monkeypatch.setattr(sharing_services, "_enqueue_staging", lambda link_id: None)  # staged by hand below
    monkeypatch.setattr(sharing_services, "_enqueue_filing", lambda opinion_id: None)
    monkeypatch.setattr(transfer_tasks, "enqueue", lambda transfer_id, queue: None)
    gateway_a.retrieve_method = "c-get"
    gateway_a.save()
    transfer = transfer_services.transfer_create(
        source=trust_a,
        destination=trust_b,
        study_instance_uids=[STUDY],
        priority="urgent",
        reason="Head injury",
        requested_by=alice,
        studies=[SUMMARY],
    )
    Transfer.objects.filter(pk=transfer.pk).update(status=Status.COMPLETED_WITH_ERRORS, completed_at=timezone.now())
    TransferInstance.objects.create(
        transfer=transfer,
        sop_instance_uid=f"{STUDY}.1",
        study_instance_uid=STUDY,
        state=InstanceState.FAILED,
        last_error="0xA700 out of resources",
    )
    pull = PullRequest.objects.create(
        requesting_trust=trust_b,
        source_trust=trust_a,
        requested_by=bob,
        nhs_number="9434765919",
        family_name="Khan",
        given_name="Priya",
        birth_date="1992-12-30",
        sex="F",
        priority="urgent",
        reason="Follow-up",
        candidates=[{**SUMMARY, "mismatches": ["sex"]}],
    )
    held_transfer = Transfer.objects.create(
        source=trust_b,
        destination=trust_a,
        source_gateway=gateway_b,
        destination_gateway=gateway_a,
        study_instance_uids=[STUDY],
        priority="routine",
        reason="Review",
        requested_by=alice,
        status=Status.AWAITING_RECONCILIATION,
    )
    held = StudyReconciliation.objects.create(
        transfer=held_transfer,
        destination=trust_a,
        study_instance_uid=STUDY,
        outcome="held",
        hold_reason="no_match",
        nhs_number="9434765919",
        patient_name="Khan^Priya",
        birth_date="19921230",
        sex="F",
        source_patient_id="RBB1",
        source_issuer="RBB_MRN",
    )
    created = create_link(alice, trust_a, ct_files[0].parent.name, studies=[SUMMARY])
    stage_files(created.link, ct_files)
    SecondOpinion.objects.create(
        link=created.link, text="No bleed.", conclusion="Normal.", consultant_name="Dr O", registration_number="G1"
    )
    alert = AuditAlert.objects.create(
        kind="emergency_override",
        severity="high",
        trust="RAA",
        dedupe_key="a11y",
        summary="Emergency access",
        nhs_number="9434765919",
        first_seen=timezone.now(),
        last_seen=timezone.now(),
    )
    return {"transfer": transfer, "pull": pull, "held": held, "link": created, "alert": alert}


def visit(chromium, live_server, journey, user, paths):
    context = chromium.new_context(base_url=live_server.url, viewport={"width": 1366, "height": 900})
    if user is not None:
        session_for(context, live_server, user)
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        for name, path in paths:
            page.goto(path)
            journey.check(page, name)
    finally:
        context.close()
    return page


def test_every_staff_page_is_accessible_for_each_role(
    chromium,
    live_server,
    region,
    alice,
    amir,
    ada,
    bob,
    trust_a,
):
    journey = Journey("accessibility-staff")
    t, pull, held, link, alert = (region[k] for k in ("transfer", "pull", "held", "link", "alert"))
    visit(chromium, live_server, journey, None, [("sign-in", "/accounts/login/")])
    visit(
        chromium,
        live_server,
        journey,
        alice,
        [
            ("clinician-home", "/"),
            ("search-form", "/trusts/RAA/studies/"),
            ("search-pacs-down", "/trusts/RAA/studies/?nhs_number=9434765919&search=1"),
            ("search-errors", "/trusts/RAA/studies/?nhs_number=123&birth_date_day=31&birth_date_month=2&search=1"),
            ("study-pacs-down", f"/trusts/RAA/studies/{STUDY}/"),
            ("push-form", f"/trusts/RAA/transfers/new/?study={STUDY}"),
            ("transfers", "/transfers/"),
            ("transfer", f"/transfers/{t.pk}/"),
            ("requests", "/requests/"),
            ("request-form", "/requests/new/"),
            ("request", f"/requests/{pull.pk}/"),
            ("share-links", "/share-links/"),
            ("share-link", f"/share-links/{link.link.pk}/"),
            ("share-form", f"/trusts/RAA/share-links/new/?study={STUDY}"),
            ("directory", "/directory/"),
            ("trust", "/trusts/RAA/"),
            ("security", "/accounts/2fa/"),
            ("not-found", "/no/such/page/"),
        ],
    )
    visit(
        chromium,
        live_server,
        journey,
        amir,
        [
            ("manager-home", "/"),
            ("operations", "/transfers/operations/"),
            ("reconciliation-queue", "/reconciliation/"),
            ("reconciliation-item", f"/reconciliation/{held.pk}/"),
            ("reconciliation-switches", "/trusts/RAA/reconciliation/"),
            ("receiver", "/receiver/"),
            ("gateway-form", "/trusts/RAA/gateways/new/"),
        ],
    )
    seq = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first()
    visit(
        chromium,
        live_server,
        journey,
        ada,
        [
            ("ig-home", "/"),
            ("audit-search", "/audit/"),
            ("audit-search-dates", "/audit/?since_day=1&since_month=1&since_year=2026"),
            ("patient-report", "/audit/patients/?nhs_number=9434765919"),
            ("user-report", f"/audit/users/?user={alice.email}"),
            ("alerts", "/audit/alerts/"),
            ("alert", f"/audit/alerts/{alert.pk}/"),
            ("verify", "/audit/verify/"),
            ("event", f"/audit/events/{seq}/"),
        ],
    )
    visit(
        chromium,
        live_server,
        journey,
        bob,
        [("requester-home", "/"), ("request-as-requester", f"/requests/{pull.pk}/")],
    )
    assert len(journey.checked) >= 36


def test_the_consultants_pages_are_accessible(chromium, live_server, region):
    from tests.sharing.conftest import emailed_code

    journey = Journey("accessibility-consultant")
    created = region["link"]
    context = chromium.new_context(base_url=live_server.url, viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(created.path)
    journey.check(page, "landing")
    page.click("#open-link button")
    page.wait_for_url("**/s/code/")
    journey.check(page, "code")
    page.fill("input[name=code]", "00000000" if emailed_code() != "00000000" else "11111111")
    page.click("button[name=verify]")
    journey.check(page, "code-wrong")
    page.fill("input[name=code]", emailed_code())
    page.click("button[name=verify]")
    page.wait_for_selector("#viewer[data-ready=true]")
    journey.check(page, "viewer")
    page.goto("/s/opinion/?another=1")
    page.click("#opinion-form button[type=submit]")
    journey.check(page, "opinion-errors")
    page.goto("/s/opinion/")
    journey.check(page, "opinion-sent")
    context.close()
    outsider = chromium.new_context(base_url=live_server.url)
    refused = outsider.new_page()
    refused.goto("/s/" + "x" * 43)
    journey.check(refused, "refused")
    outsider.close()
    assert mail.outbox


def test_the_navigation_fits_one_line_at_1366_pixels_for_the_busiest_roles(
    chromium,
    live_server,
    trust_a,
    amir,
):
    """The navigation wrapped at 1366 px for imaging managers (and more so with more roles)."""
    from accounts.models import Membership

    for role in ("clinician", "ig_officer", "regional_admin"):
        Membership.objects.get_or_create(user=amir, trust=trust_a, role=role)
    amir.is_staff = True
    amir.save()
    context = chromium.new_context(base_url=live_server.url, viewport={"width": 1366, "height": 800})
    session_for(context, live_server, amir)
    page = context.new_page()
    page.goto("/")
    tops = page.locator(".nhsuk-header__navigation-item:not([hidden])").evaluate_all(
        "items => items.filter(i => i.offsetParent !== null).map(i => Math.round(i.getBoundingClientRect().top))"
    )
    assert len(tops) >= 6 and len(set(tops)) == 1, tops
    Journey("navigation-1366").check(page, "manager-with-every-role")
    context.close()
