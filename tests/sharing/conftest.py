"""Share-link fixtures: a gateway to copy from, and links whose staged copy is a small synthetic CT.

Most tests need no PACS: `ready_link` stages a synthetic study straight into the link's folder, as the
staging task would. The staging and filing tests use real Orthanc and a real Celery worker instead.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client
from django.utils import timezone

from dicomkit.sim.synthetic import make_study
from directory.models import Gateway
from sharing import services, staging, tokens
from sharing.models import ShareLink, Staging

REAL_TASK_FIXTURES = {"share_worker", "live_stack"}


@pytest.fixture(autouse=True)
def _spool(settings, tmp_path: Path) -> None:
    settings.SPOOL_DIR = tmp_path / "spool"
    settings.SHARE_DIR = settings.SPOOL_DIR / "share"


@pytest.fixture(autouse=True)
def _no_celery(monkeypatch, request) -> None:
    """Unit tests run no broker: enqueueing is recorded instead. Tests with a real worker enqueue for real."""
    if REAL_TASK_FIXTURES & set(request.fixturenames):
        return
    queued: list[tuple[str, int]] = []
    monkeypatch.setattr(services, "_enqueue_staging", lambda link_id: queued.append(("stage", link_id)))
    monkeypatch.setattr(services, "_enqueue_filing", lambda opinion_id: queued.append(("file", opinion_id)))


@pytest.fixture(scope="session")
def ct_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Six 64x64 CT slices: small enough to stage for every test."""
    return make_study(tmp_path_factory.mktemp("share-ct"), modality="CT", n_instances=6, rows=64, columns=64, seed=61)


@pytest.fixture
def source_gateway(trust_a) -> Gateway:
    return Gateway.objects.create(
        trust=trust_a, name="Edge", ae_title="ALPHA_EDGE", host="127.0.0.1", port=4250, retrieve_method="c-get"
    )


@dataclass
class Created:
    link: ShareLink
    url: str

    @property
    def token(self) -> str:
        return self.url.rsplit("/s/", 1)[1]

    @property
    def path(self) -> str:
        return f"/s/{self.token}"


def create_link(user, trust, study_uid: str, **overrides) -> Created:
    values = {
        "trust": trust,
        "study_instance_uids": [study_uid],
        "recipient_email": "consultant@elsewhere.example",
        "recipient_name": "Dr Chidi Okafor",
        "purpose": "Second opinion on a possible pulmonary embolism",
        "created_by": user,
        **overrides,
    }
    link, url = services.share_link_create(**values)
    return Created(link, url)


def stage_files(link: ShareLink, files: list[Path]) -> None:
    """What the staging task leaves behind: flat `<SOPInstanceUID>.dcm` files and a ready link."""
    folder = staging.share_dir(link.pk)
    folder.mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.copy(path, folder / path.name)
    ShareLink.objects.filter(pk=link.pk).update(
        staging_status=Staging.READY,
        instances_total=len(files),
        instances_staged=len(files),
        staged_at=timezone.now(),
        nhs_number="",
        patient_id="RAA12345",
    )
    link.refresh_from_db()


@pytest.fixture
def ready_link(alice, trust_a, source_gateway, ct_files, django_capture_on_commit_callbacks) -> Created:
    with django_capture_on_commit_callbacks(execute=True):
        created = create_link(alice, trust_a, ct_files[0].parent.name)
    stage_files(created.link, ct_files)
    return created


def emailed_code(to: str = "consultant@elsewhere.example") -> str:
    for message in reversed(mail.outbox):
        if to in message.to and "one-time code" in message.subject:
            return re.search(r"^\s*(\d{8})\s*$", message.body, re.MULTILINE).group(1)
    raise AssertionError("no code was emailed")


def post(client: Client, path: str, data: dict, **extra):
    """A form post as the link pages' own forms make it, with the session-bound form token."""
    key = client.cookies[settings.SHARE_LINK_COOKIE_NAME].value
    return client.post(path, {**data, "share_form_token": tokens.keyed_digest("share-form", key)}, **extra)


def opened(created: Created, client: Client | None = None, **extra) -> Client:
    """A consultant's browser that pressed the link page's button: token exchanged, code emailed (second
    factor not yet passed)."""
    client = client or Client()
    response = client.post(created.path, **extra)
    assert response.status_code == 302, response.content
    return client


@pytest.fixture
def consultant(ready_link, django_capture_on_commit_callbacks) -> Iterator[Client]:
    """A consultant's browser past the token exchange and the emailed code."""
    with django_capture_on_commit_callbacks(execute=True):
        client = opened(ready_link)
    response = post(client, "/s/code/", {"code": emailed_code()})
    assert response.status_code == 302 and response["Location"] == "/s/", response.content
    yield client
