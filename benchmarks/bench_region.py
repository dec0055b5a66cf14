"""The two-trust region the transfer benchmarks move a study across. Call after django.setup()."""

from __future__ import annotations


def two_trusts(a, b, *, codes: tuple[str, str] = ("RB1", "RB2"), retrieve: str = "c-get", store: str = "c-store"):
    """Trust A (Orthanc `a`) may send to trust B (Orthanc `b`); returns (trust A, trust B, a clinician at A).

    Reconciliation is off at B: the benchmarks time the transfer, not identifier rewriting (with it on,
    B's PACS knows no local patient for the study, which would wait in the reconciliation queue)."""
    from accounts.models import Membership, User
    from directory.models import Gateway, SharingAgreement, Trust

    ta = Trust.objects.create(ods_code=codes[0], name="Benchmark source")
    tb = Trust.objects.create(
        ods_code=codes[1],
        name="Benchmark destination",
        reconcile_patient_id=False,
        prefix_accession=False,
        prefix_study_description=False,
    )
    SharingAgreement.objects.create(trust_a=ta, trust_b=tb)
    for trust, server in ((ta, a), (tb, b)):
        Gateway.objects.create(
            trust=trust,
            name=server.aet,
            ae_title=server.aet,
            host="127.0.0.1",
            port=server.dicom_port,
            dicomweb_url=server.dicomweb_url,
            retrieve_method=retrieve,
            store_method=store,
        )
    user = User.objects.create_user(email="bench@example.invalid", password=None)
    Membership.objects.create(user=user, trust=ta, role="clinician")
    return ta, tb, user
