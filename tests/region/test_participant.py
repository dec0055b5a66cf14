"""The regional archive (VNA) is a participant of the region: a trust of kind region whose gateways are VNAs."""

from __future__ import annotations

import pytest
from django.test import override_settings

from audit.context import SYSTEM
from directory.demo import seed_region
from directory.models import Gateway, SharingAgreement, Trust
from directory.services import agreement_allows, gateway_save, trust_save
from tests.helpers import api_as

pytestmark = pytest.mark.django_db


def make_archive() -> Trust:
    return trust_save(actor=SYSTEM, ods_code="Y56", name="Northern Region Imaging Archive", kind=Trust.Kind.REGION)


def test_a_new_regional_archive_keeps_arrivals_as_sent():
    archive = make_archive()

    assert (archive.reconcile_patient_id, archive.prefix_accession, archive.prefix_study_description) == (
        False,
        False,
        False,
    )


def test_a_gateway_of_the_regional_archive_is_a_vna_and_a_trusts_is_not(trust_a):
    archive = make_archive()

    vna = gateway_save(actor=SYSTEM, trust=archive, name="VNA", ae_title="REGION_VNA", host="127.0.0.1", port=4300)
    pacs = gateway_save(actor=SYSTEM, trust=trust_a, name="PACS", ae_title="A_PACS", host="127.0.0.1", port=4301)

    assert (vna.kind, pacs.kind) == (Gateway.Kind.VNA, Gateway.Kind.PACS)


def test_a_trust_becoming_the_regional_archive_turns_its_gateways_into_vnas(trust_a, gateway_a):
    trust_save(actor=SYSTEM, instance=trust_a, kind=Trust.Kind.REGION)

    gateway_a.refresh_from_db()
    assert gateway_a.kind == Gateway.Kind.VNA


def test_the_archive_exchanges_under_agreements_like_any_trust(trust_a, trust_b):
    archive = make_archive()
    SharingAgreement.objects.create(trust_a=trust_a, trust_b=archive, a_to_b=True, b_to_a=False)

    assert agreement_allows(trust_a, archive)
    assert not agreement_allows(archive, trust_a)
    assert not agreement_allows(trust_b, archive)  # no agreement, no transfer


def test_the_api_names_a_gateways_kind_and_never_lets_a_client_set_it(rita, trust_a):
    archive = make_archive()
    client = api_as(rita)

    created = client.post(
        "/api/v1/gateways/",
        {"trust": archive.ods_code, "name": "VNA", "ae_title": "REGION_VNA", "host": "127.0.0.1", "port": 4302},
        format="json",
    )
    forged = client.post(
        "/api/v1/gateways/",
        {"trust": trust_a.ods_code, "name": "X", "ae_title": "X_PACS", "host": "127.0.0.1", "port": 4303}
        | {"kind": "vna"},
        format="json",
    )

    assert created.status_code == 201, created.content
    assert created.json()["kind"] == "vna"
    assert forged.status_code == 201, forged.content
    assert forged.json()["kind"] == "pacs"
    trusts = {t["ods_code"]: t for t in client.get("/api/v1/trusts/").json()["results"]}
    assert trusts["Y56"]["kind"] == "region"
    assert trusts["Y56"]["gateways"][0]["kind"] == "vna"


@override_settings(DEBUG=True)
def test_the_demo_region_has_an_archive_every_trust_may_send_to():
    seed_region()

    archive = Trust.objects.get(kind=Trust.Kind.REGION)
    assert archive.gateways.get().kind == Gateway.Kind.VNA
    for trust in Trust.objects.exclude(pk=archive.pk):
        assert agreement_allows(trust, archive), trust.ods_code
