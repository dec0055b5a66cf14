"""Background work has a queue every deployed worker consumes, last; and the operations view shows it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings

from tests.helpers import signed_in
from transfers.models import BULK, Priority, Transfer

ROOT = Path(settings.BASE_DIR)


def worker_queues() -> dict[str, list[list[str]]]:
    found: dict[str, list[list[str]]] = {}
    for name in ("Procfile", "Procfile.demo"):
        found[name] = [m.split(",") for m in re.findall(r"--queues (\S+)", (ROOT / name).read_text())]
    found["docker-compose.yml"] = [
        m.split(",") for m in re.findall(r'"--queues", "([^"]+)"', (ROOT / "docker-compose.yml").read_text())
    ]
    return found


def test_every_process_file_has_a_worker_draining_the_bulk_queue_after_the_clinical_ones():
    for name, workers in worker_queues().items():
        draining = [queues for queues in workers if "bulk" in queues]
        assert draining, name
        for queues in draining:
            assert queues.index("bulk") > max(queues.index(q) for q in ("urgent", "routine")), (name, queues)


def test_the_region_tasks_go_to_the_bulk_queue():
    assert settings.CELERY_TASK_ROUTES["region.*"] == {"queue": "bulk"}
    assert Transfer(priority=BULK).queue == "bulk"
    assert Transfer(priority=Priority.TRAUMA).queue == "urgent"
    assert Transfer(priority=Priority.ROUTINE).queue == "routine"


@pytest.mark.django_db
def test_the_operations_view_counts_forwarding_copies_apart(trust_a, trust_b, gateway_a, gateway_b, amir, alice):
    for priority in (BULK, BULK, Priority.URGENT):
        Transfer.objects.create(
            source=trust_a,
            destination=trust_b,
            source_gateway=gateway_a,
            destination_gateway=gateway_b,
            study_instance_uids=["1.2.3"],
            priority=priority,
            reason="x",
            requested_by=alice,
        )

    page = signed_in(amir).get("/transfers/operations/")

    assert page.status_code == 200
    assert "(2 forwarding)" in page.content.decode()
