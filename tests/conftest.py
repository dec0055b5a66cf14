"""Shared fixtures: a small region and its people.

Personas (healthchecks' habit): at trust A (`RAA`) alice is a clinician, amir the imaging manager and
ada the IG officer; at trust B (`RBB`) bob is a clinician and bea the imaging manager; rita is the
regional administrator. Nobody at A has any business with B's objects.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache

from accounts.models import User
from accounts.roles import Role
from directory.models import Gateway, SharingAgreement, Trust
from tests.helpers import grant, make_user


@pytest.fixture(autouse=True, scope="session")
def _flush_past_the_audit_guards():
    """Transactional tests end with Django's flush, a TRUNCATE of every table, which the audit tables
    refuse on PostgreSQL (audit migration 0005). The suite's database user is a superuser, so its flush
    switches ordinary triggers off for that one transaction, as only a superuser can."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    flush = DatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        return flush(self, ["SET LOCAL session_replication_role = replica", *sql_list])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DatabaseOperations, "execute_sql_flush", execute_sql_flush)
        yield


@pytest.fixture(autouse=True)
def _own_audit_digest_dir(settings, tmp_path):
    """Every verification checks the database against the digest files: each test has a folder of its own,
    never the files a demo or another test left under var/."""
    settings.AUDIT_DIGEST_DIR = tmp_path / "audit-digests"


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """Tests make many staff accounts; the production hasher's cost is not what they test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Rate-limit counters and used TOTP codes live in the cache; each test starts with none."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def trust_a(db) -> Trust:
    return Trust.objects.create(
        ods_code="RAA", name="Alpha Hospitals", major_trauma_centre=True, patient_id_issuer="RAA_MRN"
    )


@pytest.fixture
def trust_b(db) -> Trust:
    return Trust.objects.create(ods_code="RBB", name="Beta District General", patient_id_issuer="RBB_MRN")


@pytest.fixture
def gateway_a(trust_a) -> Gateway:
    return Gateway.objects.create(trust=trust_a, name="Main PACS", ae_title="ALPHA_PACS", host="127.0.0.1", port=4242)


@pytest.fixture
def gateway_b(trust_b) -> Gateway:
    return Gateway.objects.create(trust=trust_b, name="Main PACS", ae_title="BETA_PACS", host="127.0.0.1", port=4243)


@pytest.fixture
def agreement(trust_a, trust_b) -> SharingAgreement:
    return SharingAgreement.objects.create(trust_a=trust_a, trust_b=trust_b, a_to_b=True, b_to_a=True)


@pytest.fixture
def alice(trust_a) -> User:
    return grant(make_user("alice@a.example"), trust_a, Role.CLINICIAN)


@pytest.fixture
def amir(trust_a) -> User:
    return grant(make_user("amir@a.example"), trust_a, Role.IMAGING_MANAGER)


@pytest.fixture
def ada(trust_a) -> User:
    return grant(make_user("ada@a.example"), trust_a, Role.IG_OFFICER)


@pytest.fixture
def bob(trust_b) -> User:
    return grant(make_user("bob@b.example"), trust_b, Role.CLINICIAN)


@pytest.fixture
def bea(trust_b) -> User:
    return grant(make_user("bea@b.example"), trust_b, Role.IMAGING_MANAGER)


@pytest.fixture
def rita(trust_a) -> User:
    rita = grant(make_user("rita@region.example"), trust_a, Role.REGIONAL_ADMIN)
    User.objects.filter(pk=rita.pk).update(is_staff=True, is_superuser=True)
    rita.refresh_from_db()
    return rita


@pytest.fixture
def no_mfa_user(trust_a) -> User:
    return grant(make_user("newbie@a.example", mfa=False), trust_a, Role.CLINICIAN)
