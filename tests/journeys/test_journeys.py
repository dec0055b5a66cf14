"""Issue #19 point 8: the clinicians', PACS managers', consultants' and IG officers' journeys, end to end in
Debian's Chromium, with a real Celery worker moving images between two real Orthanc PACS (trust A's and
trust B's). Every page visited is screenshotted (var/journeys/, or $JOURNEY_SCREENSHOTS_DIR) and checked
with axe-core. Each journey runs twice: with the mouse, and with the keyboard alone (Tab, type, Space,
Enter, arrows).

The first person of each journey signs in for real (password and authenticator code); the others join
with a signed-in session, as if they had signed in on their own computers earlier.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from django.conf import settings

from audit import alerts
from dicomkit import nhs
from dicomkit.sim.synthetic import SyntheticPatient, make_study
from directory.models import SharingAgreement
from pulls.models import PullRequest
from reconciliation.models import StudyReconciliation
from sharing.models import ShareLink
from tests.sharing.conftest import emailed_code
from tests.transfers.peers import orthanc_gateway, sop_uids_held
from tests.transfers.worker import Worker, isolated_broker
from transfers.models import Status, Transfer

from .support import Driver, Journey, session_for, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.interop, pytest.mark.django_db(transaction=True)]
MODES = ["mouse", "keyboard"]


@pytest.fixture
def stack(settings, tmp_path: Path, pacs_pair, trust_a, trust_b) -> Iterator[Worker]:
    """Trust A's and B's PACS as their gateways, an agreement both ways, and a worker sharing the spool."""
    settings.SPOOL_DIR = tmp_path / "spool"
    settings.SHARE_DIR = settings.SPOOL_DIR / "share"
    a, b = pacs_pair
    orthanc_gateway(trust_a, a)
    orthanc_gateway(trust_b, b)
    SharingAgreement.objects.create(trust_a=trust_a, trust_b=trust_b, auto_approve_urgent=True)
    with isolated_broker(tmp_path / "broker") as options:
        worker = Worker(tmp_path / "worker", options, env_extra={"SPOOL_DIR": str(settings.SPOOL_DIR)}).start()
        try:
            yield worker
        finally:
            worker.stop()


def wait_for(predicate, worker: Worker, what: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; worker log:\n{worker.log()[-6000:]}")


def patient(seed: int, *, local_id: str, issuer: str, birth_date: str = "19920314", family: str = "Moreau"):
    return SyntheticPatient(
        nhs_number=nhs.synthetic(random.Random(seed)),
        family_name=family,
        given_name="Amélie",
        birth_date=birth_date,
        sex="F",
        local_id=local_id,
        local_issuer=issuer,
    )


def study_at(server, folder: Path, person: SyntheticPatient, *, seed: int, modality: str = "CT") -> str:
    paths = make_study(
        folder,
        modality=modality,
        n_instances=6,
        rows=64,
        columns=64,
        patient=person,
        nhs_store="other-ids",
        study_date="20261101",
        seed=seed,
        description="CT head" if modality == "CT" else None,
    )
    server.upload(paths)
    return paths[0].parent.name


def browser(chromium, live_server, user=None):
    context = chromium.new_context(base_url=live_server.url, viewport={"width": 1366, "height": 900})
    if user is not None:
        session_for(context, live_server, user)
    page = context.new_page()
    page.set_default_timeout(30_000)
    return context, page


def tagged(page, label: str) -> bool:
    return page.locator("[data-stage]", has_text=re.compile(rf"^{re.escape(label)}$")).count() > 0


@pytest.mark.parametrize("mode", MODES)
def test_push_with_confirmation_arrives_at_the_destination(
    mode,
    chromium,
    live_server,
    stack,
    pacs_pair,
    tmp_path,
    alice,
    bob,
    trust_b,
):
    a, b = pacs_pair
    seed = 1900 + MODES.index(mode)
    person = patient(seed, local_id=f"RAA{seed}", issuer="RAA_MRN")
    uid = study_at(a, tmp_path / "a", person, seed=seed)
    study_at(
        b, tmp_path / "b", replace(person, local_id=f"RBB{seed}", local_issuer="RBB_MRN"), seed=seed + 50, modality="CR"
    )
    journey = Journey(f"push-{mode}")
    context, page = browser(chromium, live_server)
    drive = Driver(page, keyboard=mode == "keyboard")

    sign_in(page, alice.email, drive)
    journey.check(page, "home")
    drive.click(page.get_by_role("link", name="Studies", exact=True))
    page.wait_for_url("**/trusts/RAA/studies/")
    drive.fill(page.locator("#id_nhs_number"), nhs.format_nhs(person.nhs_number))
    drive.click(page.get_by_role("button", name="Search"))
    page.wait_for_selector("#results")
    assert page.locator("tbody", has_text="MOREAU, Amélie").count() == 1
    page.wait_for_function("() => [...document.querySelectorAll('img.portal-thumb')].every(i => i.complete)")
    journey.check(page, "search-results")
    drive.check(page.locator(f"input[name=study_instance_uids][value='{uid}']"))
    drive.click(page.get_by_role("button", name="Send the selected studies to another trust"))
    page.wait_for_url("**/transfers/new/")
    assert "MOREAU, Amélie" in page.locator(".portal-patient").inner_text()
    journey.check(page, "push-form")
    drive.choose(page.locator("#id_destination_trust"), trust_b.name)
    drive.radio(page.locator("input[name=priority][value=urgent]"))
    drive.fill(page.locator("#id_reason"), "Neurosurgical review at the regional centre")
    drive.click(page.get_by_role("button", name="Continue"))
    page.wait_for_selector("#confirm-send")
    assert "You are sending the images of" in page.content()
    assert trust_b.name in page.locator("[data-testid=destination]").inner_text()
    assert "MOREAU, Amélie" in page.locator(".portal-patient").inner_text()
    journey.check(page, "confirm")
    drive.click(page.locator("#confirm-send"))
    page.wait_for_url(re.compile(r".*/transfers/\d+/$"))
    transfer = Transfer.objects.get()
    wait_for(lambda: Transfer.objects.filter(pk=transfer.pk, status=Status.COMPLETED).exists(), stack, "arrival")
    page.reload()
    assert tagged(page, "Arrived")
    journey.check(page, "transfer-arrived")
    context.close()

    # At the destination: the arrival, filed under B's own patient, found in B's PACS.
    assert sorted(sop_uids_held(b, uid)) == sorted(p.stem for p in (tmp_path / "a" / uid).glob("*.dcm"))
    context, page = browser(chromium, live_server, bob)
    drive = Driver(page, keyboard=mode == "keyboard")
    page.goto("/transfers/?direction=incoming")
    row = page.locator(f"tr[data-transfer='{transfer.pk}']")
    assert "MOREAU, Amélie" in row.inner_text() and "Arrived" in row.inner_text()
    journey.check(page, "incoming-at-destination")
    page.goto(f"/trusts/RBB/studies/?nhs_number={person.nhs_number}&search=1")
    results = page.locator("tbody").inner_text()
    assert "CT head" in results and f"RBB{seed}" in results
    journey.check(page, "destination-search")
    context.close()


@pytest.mark.parametrize("mode", MODES)
def test_pull_approve_arrive_reconcile_and_the_requesters_home_says_arrived(
    mode,
    chromium,
    live_server,
    stack,
    pacs_pair,
    tmp_path,
    bob,
    amir,
    bea,
    trust_a,
):
    a, b = pacs_pair
    seed = 1910 + MODES.index(mode)
    person = patient(seed, local_id=f"RAA{seed}", issuer="RAA_MRN", family="Okonkwo")
    study_at(a, tmp_path / "a", person, seed=seed)
    # B knows the patient under its own MRN, with another birth date on file: held, a candidate to check.
    known = replace(person, local_id=f"RBB{seed}", local_issuer="RBB_MRN", birth_date="19920315")
    study_at(b, tmp_path / "b", known, seed=seed + 50, modality="CR")
    journey = Journey(f"pull-{mode}")
    context, page = browser(chromium, live_server)
    drive = Driver(page, keyboard=mode == "keyboard")

    sign_in(page, bob.email, drive)
    drive.click(page.get_by_role("link", name="Requests", exact=True))
    drive.click(page.get_by_role("link", name="Request images from another trust"))
    page.wait_for_url("**/requests/new/")
    journey.check(page, "request-form")
    drive.choose(page.locator("#id_source_trust"), trust_a.name)
    drive.fill(page.locator("#id_nhs_number"), person.nhs_number)
    drive.fill(page.locator("#id_family_name"), "Okonkwo")
    drive.fill(page.locator("#id_given_name"), "Amélie")
    drive.fill(page.locator("#id_birth_date_day"), "14")
    drive.fill(page.locator("#id_birth_date_month"), "3")
    drive.fill(page.locator("#id_birth_date_year"), "1992")
    drive.radio(page.locator("input[name=sex][value=F]"))
    drive.fill(page.locator("#id_reason"), "Follow-up of a head injury")
    drive.click(page.get_by_role("button", name="Send request"))
    page.wait_for_url(re.compile(r".*/requests/\d+/$"))
    assert tagged(page, "Waiting for approval")
    journey.check(page, "request-sent")
    pull = PullRequest.objects.get()

    # At the source: the approver's home says a request waits; the candidates show the study's images.
    source, spage = browser(chromium, live_server, amir)
    sdrive = Driver(spage, keyboard=mode == "keyboard")
    spage.goto("/")
    assert spage.locator("[data-testid=count-to_approve] strong").inner_text() == "1"
    journey.check(spage, "approver-home")
    sdrive.click(spage.get_by_role("link", name=f"Answer request {pull.pk}"))
    spage.wait_for_url(f"**/requests/{pull.pk}/")
    spage.wait_for_function("() => [...document.querySelectorAll('img.portal-thumb')].every(i => i.complete)")
    assert spage.locator("img.portal-thumb").evaluate("i => i.naturalWidth") > 0
    journey.check(spage, "approve")
    sdrive.click(spage.get_by_role("button", name="Approve the ticked studies"))
    spage.wait_for_selector("text=approved")
    source.close()

    wait_for(lambda: Transfer.objects.filter(status=Status.AWAITING_RECONCILIATION).exists(), stack, "the held arrival")
    page.reload()
    assert tagged(page, "Arrived, being matched to a patient")
    assert "An imaging manager at Beta District General" in page.locator("#next-step").inner_text()
    journey.check(page, "request-being-matched")

    # At the destination: the assistant offers B's own patient, the birth date marked as differing.
    item = StudyReconciliation.objects.get(outcome="held")
    dest, dpage = browser(chromium, live_server, bea)
    ddrive = Driver(dpage, keyboard=mode == "keyboard")
    dpage.goto("/")
    ddrive.click(dpage.get_by_role("link", name=f"Match arrival {item.pk}"))
    dpage.wait_for_url(f"**/reconciliation/{item.pk}/")
    card = dpage.locator(f"[data-candidate='RBB{seed}']")
    assert "15 Mar 1992" in card.locator(".portal-differs").inner_text()
    dpage.wait_for_function("() => [...document.querySelectorAll('.portal-thumbs img')].every(i => i.complete)")
    assert dpage.locator(".portal-thumbs img").first.evaluate("i => i.naturalWidth") > 0  # the held images
    journey.check(dpage, "assistant")
    ddrive.click(card.get_by_role("button", name=re.compile(f"under RBB{seed}")))
    dpage.wait_for_selector("text=filed under")
    dest.close()

    wait_for(lambda: Transfer.objects.filter(status=Status.COMPLETED).exists(), stack, "the forward")
    page.goto("/")
    row = page.locator(f"tr[data-request='{pull.pk}']")
    assert tagged(row, "Arrived"), row.inner_text()
    journey.check(page, "requester-home-arrived")
    context.close()


@pytest.mark.parametrize("mode", MODES)
def test_share_view_and_revoke_while_viewing(
    mode,
    chromium,
    live_server,
    stack,
    pacs_pair,
    tmp_path,
    alice,
    settings,
):
    settings.SITE_URL = live_server.url
    a, _ = pacs_pair
    seed = 1920 + MODES.index(mode)
    person = patient(seed, local_id=f"RAA{seed}", issuer="RAA_MRN", family="Lindqvist")
    uid = study_at(a, tmp_path / "a", person, seed=seed)
    journey = Journey(f"share-{mode}")
    context, page = browser(chromium, live_server)
    drive = Driver(page, keyboard=mode == "keyboard")

    sign_in(page, alice.email, drive)
    page.goto(f"/trusts/RAA/studies/{uid}/")
    journey.check(page, "study")
    drive.click(page.get_by_role("link", name="Share for a second opinion"))
    page.wait_for_url("**/share-links/new/**")
    assert page.locator(f"input[name=study_instance_uids][value='{uid}']").is_checked()
    drive.fill(page.locator("#id_recipient_name"), "Dr Chidi Okafor")
    drive.fill(page.locator("#id_recipient_email"), "consultant@elsewhere.example")
    drive.fill(page.locator("#id_purpose"), "Second opinion on a possible subdural haematoma")
    journey.check(page, "share-form")
    drive.click(page.locator("#create-link"))
    page.wait_for_selector("#confirm-share")
    assert "LINDQVIST, Amélie" in page.locator(".portal-patient").inner_text()
    assert "Dr Chidi Okafor" in page.locator("[data-testid=recipient]").inner_text()
    journey.check(page, "share-confirm")
    drive.click(page.locator("#confirm-share"))
    page.wait_for_selector("#share-url")
    url = page.locator("#share-url").inner_text()
    journey.check(page, "created")
    link = ShareLink.objects.get()
    wait_for(lambda: ShareLink.objects.filter(pk=link.pk, staging_status="ready").exists(), stack, "staging")

    outside = chromium.new_context(base_url=live_server.url, viewport={"width": 1366, "height": 900})
    viewer = outside.new_page()
    viewer.set_default_timeout(30_000)
    vdrive = Driver(viewer, keyboard=mode == "keyboard")
    viewer.goto(url)
    vdrive.click(viewer.locator("#open-link button"))  # opening the link changes nothing until this
    viewer.wait_for_url("**/s/code/")
    vdrive.fill(viewer.locator("input[name=code]"), emailed_code())
    vdrive.click(viewer.locator("button[name=verify]"))
    viewer.wait_for_selector("#viewer[data-ready=true]")
    journey.check(viewer, "consultant-viewer")
    first = viewer.locator("#viewer-image").get_attribute("data-sop")
    vdrive.focus(viewer.locator("#viewport")) if mode == "keyboard" else viewer.locator("#viewport").focus()
    viewer.keyboard.press("ArrowDown")
    viewer.wait_for_function(f"() => document.getElementById('viewer-image').dataset.sop !== '{first}'")

    # The clinician revokes while the consultant is looking.
    page.goto(f"/share-links/{link.pk}/")
    drive.click(page.locator("#revoke"))
    page.wait_for_selector("text=revoked")
    journey.check(page, "revoked")

    viewer.wait_for_timeout(1100)  # past the viewer's once-a-second status check
    viewer.keyboard.press("ArrowDown")
    status = viewer.locator("#viewer-status")
    status.filter(has_text="This link is no longer available").wait_for()
    assert viewer.locator("#viewer").get_attribute("data-gone") == "true"
    assert viewer.locator("#viewer-image").get_attribute("src") is None
    assert viewer.locator("#overlay-patient").inner_text() == ""  # no label of an image no longer shown
    journey.check(viewer, "consultant-link-gone")
    outside.close()
    context.close()


@pytest.mark.parametrize("mode", MODES)
def test_emergency_access_alerts_the_ig_officer_who_reads_the_patients_access_report(
    mode,
    chromium,
    live_server,
    stack,
    pacs_pair,
    tmp_path,
    alice,
    ada,
    trust_b,
):
    _, b = pacs_pair
    seed = 1930 + MODES.index(mode)
    person = patient(seed, local_id=f"RBB{seed}", issuer="RBB_MRN", family="Haddad")
    study_at(b, tmp_path / "b", person, seed=seed)
    # A trauma request from the major trauma centre is approved at once under the agreement: emergency access.
    context, page = browser(chromium, live_server, alice)
    drive = Driver(page, keyboard=mode == "keyboard")
    page.goto("/requests/new/")
    drive.choose(page.locator("#id_source_trust"), trust_b.name)
    drive.fill(page.locator("#id_nhs_number"), person.nhs_number)
    drive.fill(page.locator("#id_family_name"), "Haddad")
    drive.fill(page.locator("#id_given_name"), "Amélie")
    drive.fill(page.locator("#id_birth_date_day"), "14")
    drive.fill(page.locator("#id_birth_date_month"), "3")
    drive.fill(page.locator("#id_birth_date_year"), "1992")
    drive.radio(page.locator("input[name=sex][value=F]"))
    drive.radio(page.locator("input[name=priority][value=trauma]"))
    drive.fill(page.locator("#id_reason"), "Polytrauma, unconscious on arrival")
    drive.click(page.get_by_role("button", name="Send request"))
    page.wait_for_url(re.compile(r".*/requests/\d+/$"))
    assert "approved automatically" in page.content()
    context.close()
    alerts.scan(notify_officers=False)  # what beat's audit.scan_alerts does every AUDIT_ALERT_SCAN_SECONDS

    journey = Journey(f"ig-{mode}")
    context, page = browser(chromium, live_server)
    drive = Driver(page, keyboard=mode == "keyboard")
    sign_in(page, ada.email, drive)
    # The emergency access, and whatever else the rules saw (out of hours, when the suite runs at night).
    assert int(page.locator("[data-testid=count-alerts] strong").inner_text()) >= 1
    journey.check(page, "ig-home")
    drive.click(page.get_by_role("link", name="Emergency access (override or auto-approval)"))
    page.wait_for_url(re.compile(r".*/audit/alerts/\d+/$"))
    journey.check(page, "alert")
    drive.click(page.get_by_role("link", name=nhs.format_nhs(person.nhs_number)).first)
    page.wait_for_url("**/audit/patients/**")
    report = page.locator(".audit-summary").inner_text()
    assert "emergency access" in report and alice.email in page.content()
    journey.check(page, "patient-access-report")
    context.close()
    assert settings.SPOOL_DIR
