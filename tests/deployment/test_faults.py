# ruff: noqa: F811  (pytest fixtures imported from tests/transfers are parameters here)
"""Faults with real processes (issue #18): a Celery worker, beat, the DICOM receiver and the web process
(gunicorn) on the test database, a Redis server of the module's own as broker and cache, two real Orthancs.

Each test breaks one thing in the middle of real work and then asserts, from the destination's own index
(or the staged folder), that nothing was lost or duplicated, and that the audit chain still verifies.
The database outage is real for every process but this one: they reach PostgreSQL through a TCP proxy
the test cuts (every connection closed, new ones refused) while the test process keeps its own view.
The broker runs with production's visibility timeout (an hour): nothing here may depend on the broker
handing a lost task to another worker within a test's time.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from django.db import connection
from django.test import Client
from kombu import Connection

from audit.models import AuditEvent, ChainDigest
from audit.services import verify_chain
from directory.models import GatewaySlot, SharingAgreement
from portal import liveness
from portal.celery import app
from pulls.models import PullRequest
from sharing import staging
from sharing.models import SecondOpinion, ShareLink
from tests.dicom.orthanc import OrthancProcess
from tests.helpers import api_as, require
from tests.sharing.conftest import emailed_code, post
from tests.transfers.conftest import big_study, pacs_pair  # noqa: F401  (the session's Orthancs and study)
from tests.transfers.peers import Study, orthanc_gateway, sop_uids_held
from tests.transfers.worker import Worker, _reset_producers, database_url
from transfers.models import FINISHED, InstanceState, Transfer

from . import stack
from .stack import Process, RedisServer, TcpProxy, wait_until

pytestmark = [pytest.mark.interop, pytest.mark.django_db(transaction=True)]

# Production's broker options (portal.settings), not the hurried ones of the other worker tests.
BROKER_OPTIONS = {"visibility_timeout": 3600, "queue_order_strategy": "priority"}
BEAT_HEARTBEAT = 3


@dataclass
class Stack:
    redis: RedisServer
    proxy: TcpProxy
    worker: Worker
    beat: Process
    receiver: Process
    spool: Path
    workdir: Path

    @property
    def env(self) -> dict[str, str]:
        return self.worker.env()

    def logs(self) -> str:
        """The processes' logs without the routine lines of beat's frequent entries."""
        quiet = ("Scheduler: Sending", "Received task", "succeeded in")
        texts = (("worker", self.worker.log()), ("beat", self.beat.log()), ("receiver", self.receiver.log()))
        return "\n".join(
            f"--- {name} ---\n"
            + "\n".join(line for line in text.splitlines() if not any(q in line for q in quiet))[-5000:]
            for name, text in texts
        )


@contextmanager
def broker_at(url: str) -> Iterator[None]:
    """This process publishes to the module's Redis, as the web process does."""
    previous = app.conf.broker_url, app.conf.broker_transport_options
    app.conf.broker_url, app.conf.broker_transport_options = url, BROKER_OPTIONS
    _reset_producers()
    try:
        yield
    finally:
        app.conf.broker_url, app.conf.broker_transport_options = previous
        _reset_producers()


@pytest.fixture(scope="module")
def deployed(django_db_setup, django_db_blocker, tmp_path_factory, pacs_pair) -> Iterator[Stack]:
    require(connection.vendor == "postgresql", "the fault tests need PostgreSQL (DATABASE_URL)")
    require(Path(stack.REDIS_SERVER).exists(), "redis-server is not installed")
    root = tmp_path_factory.mktemp("faults")
    db = connection.settings_dict
    redis = RedisServer(root / "redis").start()
    proxy = TcpProxy((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))).start()
    direct = database_url()
    through_proxy = direct.replace(f"@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/", f"@127.0.0.1:{proxy.port}/")
    assert through_proxy != direct
    spool = root / "spool"
    env = {
        "DATABASE_URL": through_proxy,
        "REDIS_URL": redis.url,
        "CELERY_BROKER_URL": redis.url,
        "SPOOL_DIR": str(spool),
        "AUDIT_DIGEST_DIR": str(root / "audit-digests"),
        "BEAT_HEARTBEAT_SECONDS": str(BEAT_HEARTBEAT),
        "HEALTH_INSPECT_TIMEOUT": "2",
        "HEALTH_CACHE_SECONDS": "0",
        "REQUEST_ESCALATE_URGENT_SECONDS": "1",
    }
    with broker_at(redis.url):
        queues = ",".join(liveness.routed_queues())  # every queue anything is routed to, as deployed
        worker = Worker(root / "worker", BROKER_OPTIONS, env_extra=env, queues=queues)
        beat = stack.beat(worker.env(), root / "beat")
        receiver = stack.receiver(worker.env(), root / "receiver", pacs_pair[0].modalities["portal"][2])
        s = Stack(redis, proxy, worker, beat, receiver, spool, root)
        try:
            worker.start()
            beat.start()
            receiver.start()
            yield s
        finally:
            for process in (receiver, beat, worker):
                process.kill()  # nothing to finish: a warm shutdown would only wait
            proxy.cut()
            redis.stop()


@pytest.fixture
def region(deployed, pacs_pair, trust_a, trust_b, settings):
    trust_b.reconcile_patient_id = trust_b.prefix_accession = trust_b.prefix_study_description = False
    trust_b.save()
    settings.SPOOL_DIR = deployed.spool
    settings.SHARE_DIR = deployed.spool / "share"
    SharingAgreement.objects.create(trust_a=trust_a, trust_b=trust_b)
    a, b = pacs_pair
    return orthanc_gateway(trust_a, a), orthanc_gateway(trust_b, b)


def push(user, study_uid: str) -> int:
    body = {
        "source_trust": "RAA",
        "destination_trust": "RBB",
        "study_instance_uids": [study_uid],
        "priority": "routine",
        "reason": "Polytrauma, transferred for neurosurgery",
    }
    response = api_as(user).post("/api/v1/transfers/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def stored(transfer_id: int) -> int:
    return Transfer.objects.get(pk=transfer_id).instances.filter(state=InstanceState.STORED).count()


def finished(transfer_id: int) -> Transfer | None:
    transfer = Transfer.objects.get(pk=transfer_id)
    return transfer if transfer.status in FINISHED else None


def assert_moved_exactly_once(transfer_id: int, b: OrthancProcess, study: Study, deployed: Stack) -> None:
    transfer = wait_until(lambda: finished(transfer_id), 300, "the transfer to finish", deployed.logs)
    assert transfer.status == "completed", (transfer.errors, deployed.logs())
    held = sop_uids_held(b, study.uid)
    assert len(held) == len(set(held)) == len(study.paths), "lost or duplicated at the destination"
    assert set(held) == study.sop_uids
    assert set(transfer.instances.values_list("state", flat=True)) == {InstanceState.STORED}
    assert AuditEvent.objects.filter(event_id="110104", detail__transfer=transfer_id).count() == 1
    assert not Transfer.objects.exclude(status__in=FINISHED).exists()
    # The run gives its gateway slots back just after it records the transfer's end (a run that lost the
    # database could not: its slots lapse with its lease).
    held = GatewaySlot.objects.exclude(holder="")
    wait_until(lambda: not held.filter(expires_at__gt=dt.datetime.now(dt.UTC)).exists(), 30, "slots to be free")
    assert verify_chain().ok


def emails_with_subject(deployed: Stack, subject: str) -> int:
    """The worker's email backend is the console (DEBUG): its log holds every message it sent."""
    return sum(1 for line in deployed.worker.log().splitlines() if line.startswith("Subject:") and subject in line)


def redeliver_unacknowledged(url: str) -> int:
    """What the broker does after the visibility timeout (or a worker's restart): every task taken and not
    acknowledged goes back on its queue. Returns how many."""
    with Connection(url, transport_options={**BROKER_OPTIONS, "visibility_timeout": 0}) as conn:
        channel = conn.default_channel
        count = conn.default_channel.client.hlen(channel.unacked_key)
        channel.qos.restore_visible(num=1000)
        return count


def test_redis_restarted_mid_transfer_completes_exactly_once(deployed, region, pacs_pair, big_study, alice, bob):
    b = pacs_pair[1]
    b.delete_study(big_study.uid)
    transfer_id = push(alice, big_study.uid)
    wait_until(lambda: stored(transfer_id) >= 16, 120, "the first instances to be stored", deployed.logs)

    deployed.redis.stop()
    assert not finished(transfer_id), "the transfer finished before Redis stopped"
    time.sleep(10)
    deployed.redis.start()

    assert_moved_exactly_once(transfer_id, b, big_study, deployed)
    subject = f"Transfer {transfer_id} completed (RAA to RBB)"
    wait_until(lambda: emails_with_subject(deployed, subject), 60, "the completion email", deployed.logs)
    sent = emails_with_subject(deployed, subject)  # (a restarted worker below logs to a new file)
    # The worker consumes again: it answers the broadcast and runs what beat sends.
    done = deployed.worker.log().count("succeeded in")

    def consuming() -> bool:
        return bool(liveness.queue_consumers(2.0).get("routine")) and deployed.worker.log().count("succeeded in") > done

    try:
        wait_until(consuming, 60, "the worker to consume again after Redis came back")
        restarted = False
    except AssertionError:
        # kombu 5.7's Redis transport can raise AttributeError ('NoneType' object has no attribute 'hostname')
        # while the consumer reconnects; Celery logs "Unrecoverable error" and the worker process ends (with
        # status 0, seen here). Every deployed layout starts an ended worker again whatever its status
        # (supervisord's autorestart=true in the demo, `restart: unless-stopped` in docker-compose;
        # docs/health.md). What must never happen is a worker that lives on without consuming: nothing would
        # restart it. Do here what the supervisor does.
        status = deployed.worker.proc.poll()
        assert status is not None, "the worker lives on without consuming: no supervisor would restart it"
        deployed.worker.proc = None
        deployed.worker.start()
        done = 0
        wait_until(consuming, 60, "the restarted worker to consume")
        restarted = True
    # A task whose acknowledgement was lost with the connection comes back one day: it must change nothing.
    redeliver_unacknowledged(deployed.redis.url)
    time.sleep(5)
    assert_moved_exactly_once(transfer_id, b, big_study, deployed)
    assert sent + (emails_with_subject(deployed, subject) if restarted else 0) == 1
    if not restarted:
        assert emails_with_subject(deployed, subject) == 1


def test_postgresql_down_mid_transfer_503_then_everything_resumes(deployed, region, pacs_pair, big_study, alice):
    web, base = stack.web(deployed.env, deployed.workdir / "web")
    try:

        def healthy() -> dict | None:
            health = requests.get(f"{base}/healthz", timeout=30)
            body = health.json()
            consumed = all(body["queues"].get(q, {}).get("consumers") for q in ("urgent", "routine", "default"))
            return body if health.status_code == 200 and consumed else None

        # (A worker that lost its broker in an earlier test answers the broadcast again once reconnected.)
        body = wait_until(healthy, 60, "/healthz to see the worker", web.log)
        assert body["database"] == body["broker"] == "ok" and body["ok"] is True
        assert body["beat"]["late"] is False and body["beat"]["age_seconds"] < 3 * BEAT_HEARTBEAT, body

        b = pacs_pair[1]
        b.delete_study(big_study.uid)
        transfer_id = push(alice, big_study.uid)
        wait_until(lambda: stored(transfer_id) >= 16, 120, "the first instances to be stored", deployed.logs)

        deployed.proxy.cut()
        assert not finished(transfer_id), "the transfer finished before the database went away"
        try:
            down = requests.get(f"{base}/healthz", timeout=30)
            assert down.status_code == 503, down.text
            assert down.json()["database"] != "ok" and down.json()["problems"][0].startswith("database: ")
            time.sleep(8)
            assert requests.get(f"{base}/healthz", timeout=30).status_code == 503
        finally:
            deployed.proxy.restore()

        wait_until(
            lambda: requests.get(f"{base}/healthz", timeout=30).status_code == 200, 60, "web to answer 200", web.log
        )
        assert_moved_exactly_once(transfer_id, b, big_study, deployed)
        assert not Transfer.objects.filter(status="running").exists()
    finally:
        web.stop()


def test_receiver_killed_mid_c_move_the_transfer_completes(deployed, region, pacs_pair, big_study, alice):
    source, _ = region
    source.retrieve_method = "c-move"
    source.save()
    b_pacs = pacs_pair[1]
    b_pacs.delete_study(big_study.uid)
    transfer_id = push(alice, big_study.uid)
    wait_until(lambda: stored(transfer_id) >= 16, 120, "the first instances to be stored", deployed.logs)

    deployed.receiver.kill()
    assert not finished(transfer_id), "the transfer finished before the receiver was killed"
    time.sleep(3)
    deployed.receiver.start()

    assert_moved_exactly_once(transfer_id, b_pacs, big_study, deployed)


def test_beat_killed_and_restarted_schedules_nothing_twice_that_a_user_sees(
    deployed, region, trust_a, trust_b, alice, amir, bob, bea, settings
):
    settings.AUDIT_DIGEST_DIR = deployed.workdir / "audit-digests"
    request = PullRequest.objects.create(
        requesting_trust=trust_b,
        source_trust=trust_a,
        requested_by=bob,
        nhs_number="9434765870",
        family_name="Jones",
        given_name="Aoife",
        birth_date=dt.date(1980, 2, 3),
        sex="F",
        priority="urgent",
        reason="Head injury, transferred for neurosurgery",
    )
    subject = f"Overdue: urgent image request {request.pk} from"  # (the console folds the long header)
    # Beat with the daily digest at every minute; killed just after it sent the digest, before its state
    # file noted the run (as a crash or `kill -9` at any moment may do), then started again.
    web, base = stack.web(deployed.env, deployed.workdir / "web")

    def beat_health() -> dict:
        return requests.get(f"{base}/healthz", timeout=30).json()["beat"]

    deployed.beat.kill()
    # /healthz (and the operations view's banner) says so after three heartbeat intervals.
    late = wait_until(lambda: (b := beat_health())["late"] and b, 10 * BEAT_HEARTBEAT, "beat to be late", web.log)
    assert late["age_seconds"] > 3 * BEAT_HEARTBEAT
    digest_beat = Process(
        "beat-digest",
        deployed.beat.command,
        {**deployed.env, "BEAT_TEST_DIGEST_EVERY_MINUTE": "1"},
        deployed.workdir / "beat",
        ready="beat: Starting",
    )
    try:
        digest_beat.start()
        wait_until(lambda: emails_with_subject(deployed, subject), 30, "the escalation email", deployed.logs)
        wait_until(lambda: "Sending due task audit-chain-digest" in digest_beat.log(), 75, "beat to send the digest")
        digest_beat.kill()
        digest_beat.start()
        wait_until(lambda: ChainDigest.objects.exists(), 60, "the digest", deployed.logs)
        time.sleep(4 * BEAT_HEARTBEAT)  # several escalation scans by the new beat; a re-sent digest, if any
        assert beat_health()["late"] is False
    finally:
        digest_beat.stop()
        web.stop()
        deployed.beat.start()

    assert emails_with_subject(deployed, subject) == 1
    assert AuditEvent.objects.filter(event_id="110112", detail__request=request.pk).count() == 1
    today = dt.datetime.now(dt.UTC).date()
    assert ChainDigest.objects.filter(created_at__date=today).count() == 1, deployed.logs()
    assert verify_chain().ok


def test_worker_killed_while_staging_and_while_filing_both_complete(
    deployed,
    region,
    pacs_pair,
    big_study,
    alice,
    trust_a,
):
    body = {
        "trust": "RAA",
        "study_instance_uids": [big_study.uid],
        "recipient_email": "consultant@elsewhere.example",
        "recipient_name": "Dr Chidi Okafor",
        "purpose": "Second opinion on a possible pulmonary embolism",
        "expires_in_hours": 24,
    }
    created = api_as(alice).post("/api/v1/share-links/", body, format="json").json()
    link_id = created["id"]
    wait_until(lambda: ShareLink.objects.get(pk=link_id).instances_staged >= 10, 120, "staging to begin", deployed.logs)

    deployed.worker.kill()
    assert ShareLink.objects.get(pk=link_id).staging_status == "staging"
    deployed.worker.start()

    link = wait_until(
        lambda: ShareLink.objects.filter(pk=link_id, staging_status__in=("ready", "failed")).first(),
        240,
        "staging to finish",
        deployed.logs,
    )
    assert link.staging_status == "ready", (link.staging_error, deployed.logs())
    staged = sorted(p.stem for p in staging.share_dir(link_id).glob("*.dcm"))
    assert len(staged) == len(set(staged)) == len(big_study.paths) and set(staged) == big_study.sop_uids
    assert link.instances_total == link.instances_staged == len(big_study.paths)

    consultant = Client()
    assert consultant.post("/s/" + created["url"].rsplit("/s/", 1)[1]).status_code == 302
    assert post(consultant, "/s/code/", {"code": emailed_code()}).status_code == 302
    opinion_form = {
        "text": "Filling defect in a right lower lobe segmental artery.",
        "conclusion": "Segmental pulmonary embolism.",
        "consultant_name": "Dr Chidi Okafor",
        "registration_number": "GMC 7654321",
    }
    seen = deployed.worker.log().count("sharing.file_second_opinion")
    assert post(consultant, "/s/opinion/", opinion_form).status_code == 302
    wait_until(
        lambda: deployed.worker.log().count("sharing.file_second_opinion") > seen, 60, "the worker to take the filing"
    )
    deployed.worker.kill()
    deployed.worker.start()

    opinion = wait_until(
        lambda: SecondOpinion.objects.filter(filing_status__in=("filed", "failed")).first(),
        240,
        "filing",
        deployed.logs,
    )
    assert opinion.filing_status == "filed", (opinion.filing_error, deployed.logs())
    a = pacs_pair[0]
    sop = opinion.sr_uids[big_study.uid]["sop"]
    assert len(a.find("Instance", {"SOPInstanceUID": sop})) == 1
    srs = a.find("Instance", {"StudyInstanceUID": big_study.uid, "Modality": "SR"})
    assert len(srs) == 1, "the opinion was filed twice"
    for oid in srs:
        a.session().delete(f"{a.url}/instances/{oid}", timeout=30)
    assert verify_chain().ok
