"""The demo region: four synthetic trusts, their agreements and gateways, and one user per role per trust.

Every name, code and person here is invented. Demo TOTP secrets are derived from the email address so
that `manage.py demo_totp` can print a valid code without a phone.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, hotp_value, yield_hotp_counters_from_time
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import Membership, User
from accounts.roles import Role

from .models import Gateway, SharingAgreement, Trust
from .services import ARCHIVE_KEEPS_AS_SENT

DEMO_PASSWORD = "demo-exchange-2026"  # noqa: S105  (synthetic demo accounts only)
DEMO_EMAIL_DOMAIN = "demo.invalid"
# The demo PACS listen on this port and the next three (a soak run moves them out of the way of a demo).
SIM_PACS_BASE_PORT = int(settings.DEMO_PACS_BASE_PORT)


@dataclass(frozen=True)
class DemoTrust:
    ods_code: str
    name: str
    kind: str
    major_trauma_centre: bool
    ae_title: str


TRUSTS = (
    DemoTrust("R0A", "Northgate University Hospitals", "trust", True, "NORTHGATE_PACS"),
    DemoTrust("R0B", "Riverside District General Hospital", "trust", False, "RIVERSIDE_PACS"),
    DemoTrust("R0C", "Hillcrest District General Hospital", "trust", False, "HILLCREST_PACS"),
    DemoTrust("NV0", "Meadowbank Treatment Centre", "istc", False, "MEADOWBANK_PACS"),
)

# The region's own participant: its vendor-neutral archive (docs/region.md), on the port after the trusts'.
REGIONAL_ARCHIVE = DemoTrust("Y0R", "Northern Region Imaging Archive", "region", False, "REGION_VNA")

# (a, b, a_to_b, b_to_a, auto_approve_urgent)
AGREEMENTS = (
    ("R0A", "R0B", True, True, True),
    ("R0A", "R0C", True, True, True),
    ("R0B", "R0C", True, True, False),
    ("NV0", "R0B", True, False, False),
    # Every trust may send to the archive (forwarding rules, migrations) and have its studies back.
    ("R0A", "Y0R", True, True, False),
    ("R0B", "Y0R", True, True, False),
    ("R0C", "Y0R", True, True, False),
    ("NV0", "Y0R", True, True, False),
)

ROLE_LABELS = {
    Role.CLINICIAN: "Clinician",
    Role.IMAGING_MANAGER: "Imaging Manager",
    Role.IG_OFFICER: "IG Officer",
    Role.REGIONAL_ADMIN: "Regional Admin",
}


def demo_email(role: str, ods_code: str) -> str:
    return f"{role.replace('_', '-')}.{ods_code.lower()}@{DEMO_EMAIL_DOMAIN}"


def demo_totp_secret(email: str) -> str:
    return base64.b32encode(hashlib.sha256(f"demo-totp:{email}".encode()).digest()[:20]).decode()


def current_totp(secret: str) -> str:
    """The code an authenticator app would show now (the middle of allauth's tolerance window)."""
    counters = list(yield_hotp_counters_from_time())
    return format_hotp_value(hotp_value(secret, counters[len(counters) // 2]))


@transaction.atomic
def seed_region() -> list[tuple[str, str, str]]:
    """Create or refresh the demo region; returns (email, role, trust) for every demo user."""
    trusts = {}
    for index, spec in enumerate((*TRUSTS, REGIONAL_ARCHIVE)):
        regional = spec.kind == Trust.Kind.REGION
        trust, _ = Trust.objects.update_or_create(
            ods_code=spec.ods_code,
            defaults={
                "name": spec.name,
                "kind": spec.kind,
                "major_trauma_centre": spec.major_trauma_centre,
                "patient_id_issuer": "" if regional else f"{spec.ods_code}_MRN",
                # The archive keeps what each trust sent as it was sent.
                **dict.fromkeys(ARCHIVE_KEEPS_AS_SENT, not regional),
            },
        )
        trusts[spec.ods_code] = trust
        Gateway.objects.update_or_create(
            trust=trust,
            name="Archive" if regional else "Main PACS",
            defaults={
                "ae_title": spec.ae_title,
                "host": "127.0.0.1",
                "port": SIM_PACS_BASE_PORT + index,
                "retrieve_method": Gateway.RetrieveMethod.C_GET,
                "store_method": Gateway.StoreMethod.C_STORE,
                "query_method": Gateway.QueryMethod.C_FIND,
            },
        )
    for a, b, a_to_b, b_to_a, auto in AGREEMENTS:
        SharingAgreement.objects.update_or_create(
            trust_a=trusts[a],
            trust_b=trusts[b],
            defaults={"a_to_b": a_to_b, "b_to_a": b_to_a, "auto_approve_urgent": auto, "active": True},
        )
    users = []
    for spec in TRUSTS:
        for role in Role:
            email = demo_email(role, spec.ods_code)
            _seed_user(email, f"Demo {ROLE_LABELS[role]} {spec.ods_code}", role, trusts[spec.ods_code])
            users.append((email, role.value, spec.ods_code))
    return users


def _seed_user(email: str, full_name: str, role: str, trust: Trust) -> None:
    admin = role == Role.REGIONAL_ADMIN
    user, created = User.objects.get_or_create(
        email=email, defaults={"full_name": full_name, "is_staff": admin, "is_superuser": admin}
    )
    if created:
        user.set_password(DEMO_PASSWORD)
        user.save()
    EmailAddress.objects.update_or_create(user=user, email=email, defaults={"verified": True, "primary": True})
    Membership.objects.get_or_create(user=user, trust=trust, role=role)
    if not Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists():
        TOTP.activate(user, demo_totp_secret(email))


class DemoOnlyCommand(BaseCommand):
    """A command that creates or reveals the demo's published credentials.

    DEBUG is the one setting a production deployment must never have on, so it is what tells a demo
    machine from a real one: on a real one these commands would make superusers whose password is in
    the README and TOTP secrets anyone can compute from an email address.
    """

    def execute(self, *args: object, **options: object) -> str | None:
        if not settings.DEBUG:
            raise CommandError(
                f"{self._name()} is for demo machines only and refuses to run with DEBUG off: it would create "
                "or reveal accounts whose password and second factor are public. Run it with DEBUG=1 "
                "(as `make demo` does), never against a production database."
            )
        return super().execute(*args, **options)

    def _name(self) -> str:
        return type(self).__module__.rsplit(".", 1)[-1]
