"""Making the region's manifests: once a transfer has ended with studies delivered, each study is listed at
its destination (the holder's own answer, after reconciliation rewrote the identity) and a KOS manifest
(XDS-I.b) is made of the instances the transfer delivered. The FHIR ImagingStudy is drawn from the same
row (manifests.resources)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from pydicom.uid import generate_uid

from dicomkit import GatewayClient, Instance, Series, Study, StudyQuery
from dicomkit.kos import ManifestInstance, ManifestSeries, ManifestStudy, build_manifest, manifest_bytes
from directory.access import Work, gateway_access
from transfers.models import InstanceState, Status, Transfer

from .models import StudyManifest

log = structlog.get_logger(__name__)
DELIVERED = (Status.COMPLETED, Status.COMPLETED_WITH_ERRORS)


@dataclass(frozen=True)
class Listing:
    """A study as its holder's PACS lists it."""

    study: Study
    series: list[Series]
    instances: list[Instance]


def document_source_uid() -> str:
    """The portal's Retrieve Location UID: configured, or derived from SITE_URL (the same every time)."""
    return settings.IMAGING_DOCUMENT_SOURCE_UID or generate_uid(
        entropy_srcs=["imaging-document-source", settings.SITE_URL]
    )


def dicomweb_root(ods_code: str) -> str:
    """The portal's DICOMweb root for a trust's studies (docs/dicomweb.md, the staff root)."""
    return f"{settings.SITE_URL}/dicomweb/trusts/{ods_code}"


def delivered_by_study(transfer: Transfer) -> dict[str, set[str]]:
    stored = transfer.instances.filter(state=InstanceState.STORED)
    found: dict[str, set[str]] = defaultdict(set)
    for study, sop in stored.values_list("study_instance_uid", "sop_instance_uid"):
        found[study].add(sop)
    return found


def manifests_for_transfer(transfer_id: int) -> list[StudyManifest]:
    """The manifests of a transfer's delivered studies, making those not made yet (idempotent: a second
    call, or a retried task, makes none twice). Raises GatewayError when the destination cannot list."""
    transfer = Transfer.objects.select_related("source", "destination", "destination_gateway").get(pk=transfer_id)
    if transfer.status not in DELIVERED:
        return []
    delivered = delivered_by_study(transfer)
    made = set(transfer.manifests.values_list("study_instance_uid", flat=True))
    todo = [uid for uid in transfer.study_instance_uids if delivered.get(uid) and uid not in made]
    if todo:
        subject = f"manifests of transfer {transfer.pk}"
        with gateway_access(transfer.destination_gateway, work=Work.MANIFEST, subject=subject) as client:
            listings = {uid: list_study(client, uid) for uid in todo}
        for uid, listing in listings.items():
            if listing is not None:
                manifest_create(transfer=transfer, listing=listing, delivered=delivered[uid])
    return list(transfer.manifests.order_by("pk"))


def list_study(client: GatewayClient, study_uid: str) -> Listing | None:
    studies = client.find_studies(StudyQuery(study_instance_uid=study_uid, limit=1))
    if not studies:
        return None
    return Listing(studies[0], client.find_series(study_uid), client.find_instances(study_uid))


def manifest_study(transfer: Transfer, listing: Listing, delivered: set[str]) -> ManifestStudy:
    """What the manifest says: the holder's identity of the patient, and each delivered instance the holder
    lists (an instance the destination does not list is not the holder's to offer)."""
    study, root = listing.study, dicomweb_root(transfer.destination.ods_code)
    by_series: dict[str, list[ManifestInstance]] = defaultdict(list)
    for item in listing.instances:
        if item.sop_instance_uid in delivered and item.sop_class_uid:
            by_series[item.series_instance_uid].append(
                ManifestInstance(item.sop_instance_uid, item.sop_class_uid, item.instance_number)
            )
    known = {s.series_instance_uid: s for s in listing.series}
    series = []
    for uid, instances in by_series.items():
        info = known.get(uid) or Series(study.study_instance_uid, uid)
        series.append(
            ManifestSeries(
                series_instance_uid=uid,
                modality=info.modality,
                series_number=info.series_number,
                description=info.description,
                instances=tuple(instances),
                retrieve_url=f"{root}/studies/{study.study_instance_uid}/series/{uid}",
            )
        )
    series.sort(key=lambda s: (s.series_number is None, s.series_number or 0, s.series_instance_uid))
    return ManifestStudy(
        study_instance_uid=study.study_instance_uid,
        patient_id=study.patient_id,
        issuer_of_patient_id=study.issuer_of_patient_id,
        patient_name=study.patient_name,
        birth_date=study.birth_date,
        sex=study.sex,
        nhs_number=study.nhs_number or transfer.nhs_number,
        study_date=study.study_date,
        study_time=study.study_time,
        accession_number=study.accession_number,
        description=study.description,
        series=tuple(series),
        retrieve_ae_title=transfer.destination_gateway.ae_title,
        retrieve_location_uid=document_source_uid(),
        institution=transfer.destination.name,
    )


@transaction.atomic
def manifest_create(*, transfer: Transfer, listing: Listing, delivered: set[str]) -> StudyManifest | None:
    content = manifest_study(transfer, listing, delivered)
    if not content.series:
        log.warning("manifest_nothing_listed", transfer_id=transfer.pk, study=listing.study.study_instance_uid)
        return None
    kos = build_manifest(content, now=timezone.localtime())
    manifest, _ = StudyManifest.objects.get_or_create(
        transfer=transfer,
        study_instance_uid=content.study_instance_uid,
        defaults={
            "holder": transfer.destination,
            "sender": transfer.source,
            "gateway": transfer.destination_gateway,
            "nhs_number": content.nhs_number if len(content.nhs_number) == 10 else "",
            "patient_id": content.patient_id[:64],
            "issuer_of_patient_id": content.issuer_of_patient_id[:64],
            "patient_name": content.patient_name[:200],
            "birth_date": content.birth_date[:8],
            "sex": content.sex[:1],
            "study_date": content.study_date[:8],
            "study_time": content.study_time[:16],
            "accession_number": content.accession_number[:64],
            "description": content.description[:200],
            "series": [_series_json(s) for s in content.series],
            "number_of_instances": sum(len(s.instances) for s in content.series),
            "kos_sop_instance_uid": str(kos.SOPInstanceUID),
            "kos": manifest_bytes(kos),
        },
    )
    return manifest


def _series_json(series: ManifestSeries) -> dict:
    return {
        "uid": series.series_instance_uid,
        "modality": series.modality,
        "number": series.series_number,
        "description": series.description,
        "instances": [
            {"uid": i.sop_instance_uid, "sop_class": i.sop_class_uid, "number": i.instance_number}
            for i in series.instances
        ],
    }
