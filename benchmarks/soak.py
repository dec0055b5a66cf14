"""Soak run: the demo's own process layout under steady use for a set time, then a reckoning.

    .venv/bin/python benchmarks/soak.py [--minutes 20] [--rate 10] [--postgres postgres://postgres@127.0.0.1:5432]

Starts `python -m portal.demo` (what `make demo` runs: supervisord over Procfile.demo, the embedded
Redis, web, two workers, beat, the DICOM receiver, four simulated PACS) in a throwaway folder of its own
(VAR_DIR: SQLite database unless --postgres, Redis, PACS storage, spool, digests, mail) on free ports,
after `migrate` and `seed_demo` there. Beat's intervals are shortened through the environment (alert scan
30 s, digest check 60 s, gateway echo 30 s; the digest day starts at the next full hour, so a run over an
hour spans two digest days). Then, `--rate` actions a minute until `--minutes` have passed, through the
REST API and the consultant's pages as outside clients:

* push: a new synthetic study C-STOREd into R0A's PACS (as a modality would), pushed to R0B or R0C;
* emergency pull: an urgent request from R0A (a major trauma centre) to R0B, auto-approved under their
  agreement (an emergency access, which must raise an alert);
* routine pull: a request from R0C to R0A, approved by R0A's imaging manager;
* share: a share link to a consultant; view: the consultant opens a link, enters the emailed code, reads
  the manifest and an image;
* audit: the IG officer searches the trail and the alerts; every tenth time verifies the chain.

At the end (after the work in flight drains) it checks that every transfer reached a final state; every
study sent is at its destination exactly once, from the destination PACS's own index and its files; every
emergency access has its alert; a digest was written for each digest day; the chain verifies; every share
link was staged; no process restarted (supervisord's process table, and its log). It prints counts and each
process's peak RSS (sampled every 5 s, a program's children included), records its figures
in benchmarks/results/soak/ (record.py), and exits 1 if a check failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from record import Run  # noqa: E402 - benchmarks/ is on the path as the script's own folder

PYTHON = sys.executable
DEMO_TIME_ZONE = "Europe/London"  # settings.TIME_ZONE: the digest hour is local time


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="how long to keep the load on (default 20)")
    parser.add_argument("--rate", type=float, default=10.0, help="actions a minute (default 10)")
    parser.add_argument("--instances", type=int, default=10, help="instances in each pushed study (default 10)")
    parser.add_argument("--drain-minutes", type=float, default=10.0, help="most to wait for work in flight")
    parser.add_argument("--postgres", default="", help="a PostgreSQL server URL: a throwaway database there")
    parser.add_argument("--workdir", default="", help="the run's folder (default: a new one under /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (and database)")
    parser.add_argument("--seed", type=int, default=18)
    return parser.parse_args()


# --- places -----------------------------------------------------------------------------------------------


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, rng: random.Random) -> int:
    """The first of `count` consecutive free ports."""
    for _ in range(200):
        base = rng.randrange(20000, 60000)
        if all(port_is_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no free ports")


def throwaway_database(args: argparse.Namespace, work: Path) -> tuple[str, str]:
    """(DATABASE_URL, name to drop or "")."""
    if not args.postgres:
        return f"sqlite:///{work / 'portal.sqlite3'}", ""
    import psycopg

    name = f"soak_{datetime.now(UTC):%Y%m%d%H%M%S}_{os.getpid()}"
    with psycopg.connect(f"{args.postgres.rstrip('/')}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{args.postgres.rstrip('/')}/{name}", name


def drop_database(args: argparse.Namespace, name: str) -> None:
    if not name:
        return
    import psycopg

    with psycopg.connect(f"{args.postgres.rstrip('/')}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the demo's processes -----------------------------------------------------------------------------------


class Demo:
    """`python -m portal.demo` (supervisord over Procfile.demo) in its own session."""

    def __init__(self, env: dict[str, str], work: Path) -> None:
        self.env, self.work = env, work
        self.log_path = work / "demo.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.peaks: dict[str, int] = {}
        self.peak_single: dict[str, int] = {}
        self._stop_sampling = threading.Event()
        self._sampler: threading.Thread | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")  # append: every process writes to it through supervisord's /dev/stdout
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "portal.demo"], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def rpc(self) -> Any:
        from supervisor.xmlrpc import SupervisorTransport

        sock = Path(self.env["VAR_DIR"]) / "supervisor" / "supervisor.sock"
        return xmlrpc.client.ServerProxy(
            "http://127.0.0.1", transport=SupervisorTransport(None, None, f"unix://{sock}")
        )

    def processes(self) -> dict[str, dict]:
        return {p["name"]: p for p in self.rpc().supervisor.getAllProcessInfo()}

    def wait_ready(self, web: str, timeout: float = 300.0) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"supervisord exited:\n{self.log_tail()}")
            log = self.log_path.read_text(errors="replace")
            with contextlib.suppress(Exception):
                states = {p["statename"] for p in self.processes().values()}
                workers_ready = log.count(" ready.") >= 2
                if states == {"RUNNING"} and workers_ready and requests.get(f"{web}/healthz", timeout=5).ok:
                    return
            time.sleep(2)
        raise RuntimeError(f"the demo did not come up in {timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def start_sampling(self) -> None:
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        import psutil

        while not self._stop_sampling.wait(5.0):
            with contextlib.suppress(Exception):
                for name, info in self.processes().items():
                    if not info["pid"]:
                        continue
                    try:
                        top = psutil.Process(info["pid"])
                        family = [top, *top.children(recursive=True)]
                    except psutil.Error:
                        continue
                    total = 0
                    for proc in family:
                        with contextlib.suppress(psutil.Error):
                            rss = proc.memory_info().rss
                            total += rss
                            self.peak_single[name] = max(self.peak_single.get(name, 0), rss)
                    self.peaks[name] = max(self.peaks.get(name, 0), total)

    def stop(self) -> None:
        self._stop_sampling.set()
        if not self.proc or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # supervisord stops every program, then itself
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


# --- the load ---------------------------------------------------------------------------------------------


class Soak:
    def __init__(self, args: argparse.Namespace, env: dict[str, str], work: Path, web: str) -> None:
        import requests

        from directory.demo import TRUSTS, demo_email
        from exchange.demo import PATIENTS, demo_nhs_numbers

        self.args, self.env, self.work, self.web = args, env, work, web
        self.rng = random.Random(args.seed)
        self.requests = requests
        self.trusts = {t.ods_code: t for t in TRUSTS}
        self.patients, self.nhs = PATIENTS, demo_nhs_numbers()
        self.email = demo_email
        self.counts: dict[str, int] = {}
        self.errors: list[str] = []
        self.pushed: list[tuple[str, str, int]] = []  # (study uid, destination, instances)
        self.pending_requests: list[int] = []
        self.links: list[dict] = []  # {"id", "url", "recipient", "viewed"}
        self.audits = 0
        self.study_seq = 0
        self.sessions = {
            key: self._api(role, ods)
            for key, role, ods in (
                ("clin_a", "clinician", "R0A"),
                ("clin_c", "clinician", "R0C"),
                ("im_a", "imaging_manager", "R0A"),
                ("ig_a", "ig_officer", "R0A"),
            )
        }

    def _api(self, role: str, ods: str) -> Any:
        from io import StringIO

        from django.core.management import call_command

        out = StringIO()
        call_command("drf_create_token", self.email(role, ods), stdout=out)
        key = out.getvalue().split()[2]
        session = self.requests.Session()
        session.headers["Authorization"] = f"Token {key}"
        return session

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def call(self, who: str, method: str, path: str, expect: tuple[int, ...] = (200, 201), **kwargs: Any) -> Any:
        try:
            response = self.sessions[who].request(method, f"{self.web}{path}", timeout=120, **kwargs)
        except self.requests.RequestException as exc:
            self.errors.append(f"{method} {path}: {type(exc).__name__}: {exc}")
            return None
        if response.status_code not in expect:
            self.errors.append(f"{method} {path}: {response.status_code} {response.text[:300]}")
            return None
        return response.json() if "json" in response.headers.get("Content-Type", "") else response

    # the actions -------------------------------------------------------------------------------------

    def push(self) -> None:
        """A modality stores a new study of a patient R0A shares with the destination; R0A pushes it."""
        index, destination = self.rng.choice(((0, "R0B"), (1, "R0C")))
        uid = self._new_study_at_r0a(index)
        body = {
            "source_trust": "R0A",
            "destination_trust": destination,
            "study_instance_uids": [uid],
            "priority": self.rng.choice(("routine", "routine", "urgent")),
            "reason": "soak: images for the receiving team",
        }
        if self.call("clin_a", "POST", "/api/v1/transfers/", json=body):
            self.pushed.append((uid, destination, self.args.instances))
            self.count("push")

    def _new_study_at_r0a(self, index: int) -> str:
        from pynetdicom import AE, StoragePresentationContexts

        from dicomkit.sim.synthetic import SyntheticPatient, make_study
        from exchange.demo import sim_pacs_address

        person = self.patients[index]
        patient = SyntheticPatient(
            nhs_number=self.nhs[index],
            family_name=person.family_name,
            given_name=person.given_name,
            birth_date=person.birth_date,
            sex=person.sex,
            local_id=f"R0A{100000 + 17 * index + 3}",  # R0A's MRN for them (exchange.demo)
            local_issuer="R0A_MRN",
        )
        self.study_seq += 1
        folder = self.work / "modality" / str(self.study_seq)
        paths = make_study(
            folder,
            modality="CT",
            n_instances=self.args.instances,
            rows=128,
            columns=128,
            patient=patient,
            nhs_store="patientid" if index == 0 else "other-ids",
            charset="ISO_IR 192",
            study_date=datetime.now(UTC).strftime("%Y%m%d"),
            seed=100000 + self.study_seq,
        )
        ae_title, port = sim_pacs_address("R0A")
        ae = AE(ae_title="SOAK_MODALITY")
        ae.requested_contexts = StoragePresentationContexts[:120]
        assoc = ae.associate("127.0.0.1", port, ae_title=ae_title)
        if not assoc.is_established:
            raise RuntimeError("R0A's PACS refused the modality's association")
        try:
            for path in paths:
                status = assoc.send_c_store(path)
                if not status or status.Status not in (0x0000, 0x0111):
                    raise RuntimeError(f"R0A's PACS did not store {path.name}: {status}")
        finally:
            assoc.release()
        shutil.rmtree(folder, ignore_errors=True)
        return paths[0].parent.name

    def _request_body(self, index: int, source: str, priority: str) -> dict:
        person = self.patients[index]
        birth = person.birth_date
        return {
            "source_trust": source,
            "nhs_number": self.nhs[index],
            "family_name": person.family_name,
            "given_name": person.given_name,
            "birth_date": f"{birth[:4]}-{birth[4:6]}-{birth[6:]}",
            "sex": person.sex,
            "date_from": "2000-01-01",
            "date_to": "2026-06-30",  # the demo's own studies, not the ones this run pushes
            "priority": priority,
            "reason": "soak: prior imaging for a patient here now",
        }

    def pull_urgent(self) -> None:
        """An emergency access: R0A's clinician (a major trauma centre) asks R0B for a patient's priors,
        auto-approved under their agreement."""
        created = self.call("clin_a", "POST", "/api/v1/requests/", json=self._request_body(0, "R0B", "urgent"))
        if created:
            self.count("emergency pull")
            if created.get("status") != "approved":
                self.errors.append(f"urgent request {created.get('id')} was not auto-approved: {created.get('status')}")

    def pull_routine(self) -> None:
        """R0C asks R0A for another patient's priors; R0A's imaging manager approves the requests waiting
        since the last time. (Not R0B for the same patient: a study pulled back to the trust it came from,
        after R0B's reconciliation rewrote its patient ID, is a conflicting copy that R0A's PACS refuses.)"""
        for request_id in self.pending_requests:
            if self.call("im_a", "POST", f"/api/v1/requests/{request_id}/approve/", json={}):
                self.count("routine pull approved")
        self.pending_requests = []
        created = self.call("clin_c", "POST", "/api/v1/requests/", json=self._request_body(1, "R0A", "routine"))
        if created:
            self.pending_requests.append(created["id"])
            self.count("routine pull")

    def share(self) -> None:
        uid = self.rng.choice([u for u, _d, _n in self.pushed] or [self._a_demo_study()])
        n = len(self.links) + 1
        body = {
            "trust": "R0A",
            "study_instance_uids": [uid],
            "recipient_email": f"consultant{n}@soak.invalid",
            "recipient_name": f"Consultant {n}",
            "expires_in_hours": 24,
            "allow_download": False,
            "purpose": "soak: a second opinion",
        }
        created = self.call("clin_a", "POST", "/api/v1/share-links/", json=body)
        if created:
            self.links.append({"id": created["id"], "url": created["url"], "recipient": body["recipient_email"]})
            self.count("share")

    def _a_demo_study(self) -> str:
        with sqlite3.connect(Path(self.env["VAR_DIR"]) / "pacs" / "R0A" / "index.sqlite") as db:
            return db.execute("SELECT study_instance_uid FROM studies LIMIT 1").fetchone()[0]

    def view(self) -> None:
        """The consultant opens the newest link not yet viewed: button, emailed code, manifest, an image."""
        unviewed = [link for link in self.links if not link.get("viewed")]
        if not unviewed:
            return
        link = unviewed[0]
        link["viewed"] = True
        browser = self.requests.Session()
        url = link["url"] if link["url"].startswith("http") else f"{self.web}{link['url']}"
        if browser.get(url, timeout=60).status_code != 200:
            self.errors.append(f"consultant {link['recipient']}: the link's page did not open")
            return
        page = browser.post(url, timeout=60, allow_redirects=True)  # the button: a session, and a code by email
        token = re.search(r'name="share_form_token" value="([^"]+)"', page.text)
        code = self._emailed_code(link["recipient"])
        if not token or not code:
            self.errors.append(f"consultant {link['recipient']}: no code form or no code email ({page.status_code})")
            return
        verified = browser.post(
            f"{self.web}/s/code/", data={"share_form_token": token.group(1), "code": code, "verify": "1"}, timeout=60
        )
        if verified.status_code != 200 or "/s/code/" in verified.url:
            self.errors.append(f"consultant {link['recipient']}: the code was refused ({verified.status_code})")
            return
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # staging may still be under way
            manifest = browser.get(f"{self.web}/s/manifest.json", timeout=60)
            sops = re.findall(r'"sop_instance_uid":\s*"([0-9.]+)"', manifest.text) if manifest.ok else []
            if sops:
                image = browser.get(f"{self.web}/s/image/{sops[0]}/0.png", timeout=60)  # frames count from 0
                if image.ok and image.content[:4] == b"\x89PNG":
                    self.count("consultant view")
                else:
                    self.errors.append(f"consultant {link['recipient']}: image {image.status_code}")
                return
            time.sleep(3)
        self.errors.append(f"consultant {link['recipient']}: the manifest stayed empty for 2 minutes")

    def _emailed_code(self, recipient: str, timeout: float = 60.0) -> str | None:
        import email

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for path in sorted((Path(self.env["VAR_DIR"]) / "mail").glob("*.log"), key=lambda p: p.stat().st_mtime):
                text = path.read_text(errors="replace")
                for raw in text.split("\n" + "-" * 79 + "\n"):
                    if recipient not in raw or "one-time code" not in raw:
                        continue
                    message = email.message_from_string(raw.strip())
                    body = message.get_payload(decode=True) or b""
                    found = re.search(r"shared with you is:\s+(\S+)", body.decode(errors="replace"))
                    if found:
                        return found.group(1)
            time.sleep(1)
        return None

    def audit(self) -> None:
        self.audits += 1
        since = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
        if self.call("ig_a", "GET", "/api/v1/audit-events/", params={"trust": "R0A", "since": since}) is not None:
            self.count("audit search")
        if self.call("ig_a", "GET", "/api/v1/audit-alerts/") is not None:
            self.count("alert list")
        if self.audits % 10 == 1:
            report = self.call("ig_a", "POST", "/api/v1/audit-events/verify/", json={"since_last_digest": True})
            if report is not None:
                self.count("chain verification")
                if not report.get("ok"):
                    self.errors.append(f"the chain did not verify mid-run: {report}")

    def status(self) -> None:
        if self.call("clin_a", "GET", "/api/v1/transfers/", params={"direction": "outgoing"}) is not None:
            self.count("status")

    ACTIONS = ("push", "pull_urgent", "share", "audit", "push", "pull_routine", "view", "status")

    def run(self, minutes: float) -> None:
        interval = 60.0 / self.args.rate
        deadline = time.monotonic() + minutes * 60
        step = 0
        next_at = time.monotonic()
        while time.monotonic() < deadline:
            action = self.ACTIONS[step % len(self.ACTIONS)]
            step += 1
            try:
                getattr(self, action)()
            except Exception as exc:  # noqa: BLE001 - a failed action is a finding, not the end of the run
                self.errors.append(f"{action}: {type(exc).__name__}: {exc}")
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
            if step % 40 == 0:
                print(f"  {datetime.now(UTC):%H:%M:%S} {step} actions, {len(self.errors)} errors: {self.counts}")
        for request_id in self.pending_requests:  # the last routine requests, so nothing waits on a person
            if self.call("im_a", "POST", f"/api/v1/requests/{request_id}/approve/", json={}):
                self.count("routine pull approved")
        self.pending_requests = []


# --- the reckoning --------------------------------------------------------------------------------------------


def drain(soak: Soak, minutes: float) -> None:
    from sharing.models import ShareLink
    from transfers.models import ACTIVE, Transfer

    deadline = time.monotonic() + minutes * 60
    while time.monotonic() < deadline:
        active = Transfer.objects.filter(status__in=ACTIVE).count()
        staging = ShareLink.objects.filter(pk__in=[link["id"] for link in soak.links]).exclude(
            staging_status__in=("ready", "failed")
        )
        if not active and not staging.exists():
            return
        time.sleep(5)


def pacs_index(var: Path, ods: str) -> sqlite3.Connection:
    db = sqlite3.connect(f"file:{var / 'pacs' / ods / 'index.sqlite'}?mode=ro", uri=True)
    return db


def reckon(soak: Soak, demo: Demo, started: dict[str, dict], scan_seconds: int, digest_days: tuple[int, int]) -> dict:
    from audit.codes import EventType
    from audit.digest import verify_anchored
    from audit.models import AuditAlert, AuditEvent, ChainDigest
    from sharing.models import ShareLink
    from transfers.models import FINISHED, Status, Transfer

    var = Path(soak.env["VAR_DIR"])
    checks: dict[str, bool] = {}
    figures: dict[str, Any] = {"actions": dict(soak.counts), "errors": len(soak.errors)}

    transfers = list(Transfer.objects.select_related("source", "destination"))
    by_status: dict[str, int] = {}
    for t in transfers:
        by_status[t.status] = by_status.get(t.status, 0) + 1
    figures["transfers"] = {"total": len(transfers), **by_status}
    checks["every transfer reached a final state"] = all(t.status in FINISHED for t in transfers)
    checks["no transfer failed"] = all(t.status in (Status.COMPLETED,) for t in transfers)

    # Each study a completed transfer moved: at the destination exactly as many instances as at the source,
    # the same SOP Instance UIDs, each once in the index, and as many files on disk as index rows.
    mismatches = []
    moved = 0
    for t in transfers:
        if t.status != Status.COMPLETED:
            continue
        src, dst = pacs_index(var, t.source.ods_code), pacs_index(var, t.destination.ods_code)
        for uid in t.study_instance_uids:
            q = "SELECT sop_instance_uid FROM instances WHERE study_instance_uid = ?"
            have = [r[0] for r in dst.execute(q, (uid,))]
            want = {r[0] for r in src.execute(q, (uid,))}
            moved += len(have)
            if len(have) != len(set(have)) or set(have) != want:
                mismatches.append(f"transfer {t.pk} study {uid}: {len(have)} at the destination, {len(want)} sent")
        src.close()
        dst.close()
    duplicates_on_disk: dict[str, dict] = {}
    refused: dict[str, int] = {}  # arrivals a PACS quarantined (0x0111: other content under a known UID)
    for ods in soak.trusts:
        folder = var / "pacs" / ods
        quarantined = list((folder / "quarantine").glob("*.dcm"))
        if quarantined:
            refused[ods] = len(quarantined)
        files = [
            p
            for p in folder.rglob("*.dcm")
            if p.is_file() and not p.name.startswith(".") and (folder / "quarantine") not in p.parents
        ]
        with contextlib.closing(pacs_index(var, ods)) as db:
            rows = db.execute("SELECT COUNT(*), COUNT(DISTINCT sop_instance_uid) FROM instances").fetchone()
        if not (len(files) == rows[0] == rows[1]):
            duplicates_on_disk[ods] = {"files": len(files), "index rows": rows[0], "distinct SOPs": rows[1]}
    figures["instances checked at destinations"] = moved
    figures["study mismatches"] = mismatches[:20]
    figures["PACS whose files and index disagree"] = duplicates_on_disk
    figures["arrivals refused by a PACS"] = refused
    checks["every arrival at its destination exactly once"] = not mismatches and not duplicates_on_disk
    checks["no arrival refused by a PACS"] = not refused

    time.sleep(scan_seconds * 1.5)  # one more scan for the last emergency access
    emergencies = list(
        AuditEvent.objects.filter(event_type=EventType.EMERGENCY_OVERRIDE_STARTED).values_list("seq", flat=True)
    )
    keys = set(AuditAlert.objects.filter(dedupe_key__startswith="emergency:").values_list("dedupe_key", flat=True))
    alerted = {int(k.split(":")[1]) for k in keys}
    figures["emergency accesses"] = len(emergencies)
    figures["emergency alerts"] = len(alerted)
    figures["alerts of every kind"] = AuditAlert.objects.count()
    checks["every emergency access produced an alert"] = bool(emergencies) and set(emergencies) <= alerted

    digests = list(ChainDigest.objects.order_by("created_at").values_list("created_at", "path"))
    figures["digests"] = len(digests)
    figures["digest days spanned"] = digest_days
    checks["a digest for each digest day, one each"] = digest_days[0] <= len(digests) <= digest_days[1] and all(
        Path(path).is_file() for _at, path in digests
    )
    verification = verify_anchored()
    figures["audit events"] = AuditEvent.objects.count()
    checks["the audit chain verifies against the digests"] = verification.report.ok

    links = ShareLink.objects.filter(pk__in=[link["id"] for link in soak.links])
    states: dict[str, int] = {}
    for state in links.values_list("staging_status", flat=True):
        states[state] = states.get(state, 0) + 1
    figures["share links"] = states
    checks["every share link was staged"] = set(states) <= {"ready"}

    now = demo.processes()
    restarted = [
        name for name, info in now.items() if info["pid"] != started[name]["pid"] or info["statename"] != "RUNNING"
    ]
    unexpected = demo.log_path.read_text(errors="replace").count("not expected")
    figures["processes restarted"] = restarted
    figures["unexpected exits in supervisord's log"] = unexpected
    checks["no process restarted unexpectedly"] = not restarted and unexpected == 0
    checks["no request or action failed"] = not soak.errors
    figures["first errors"] = soak.errors[:20]
    figures["peak RSS MB (program with its children)"] = {k: round(v / 2**20, 1) for k, v in sorted(demo.peaks.items())}
    figures["peak RSS MB (largest single process)"] = {
        k: round(v / 2**20, 1) for k, v in sorted(demo.peak_single.items())
    }
    figures["checks"] = checks
    return figures


def main() -> int:
    args = parse_args()
    with Run(__file__, arguments={k: v for k, v in vars(args).items() if k not in ("workdir", "keep")}) as run:
        return soak_run(args, run)


def record_figures(run: Run, figures: dict[str, Any]) -> None:
    """The soak's reckoning as record.py figures: the checks, what moved, the largest process."""
    checks = figures["checks"]
    transfers = figures["transfers"]
    conditions = (
        f"{figures['minutes of load']:g} min at {figures['actions a minute']:g} actions/min, {figures['database']}"
    )
    run.figure(
        "checks_passed",
        sum(1 for ok in checks.values() if ok),
        "checks",
        label=f"soak of the demo's layout ({conditions}): checks passed",
        target=(">=", len(checks)),
        checks=checks,
        first_errors=figures["first errors"],
    )
    run.figure(
        "transfers_completed",
        transfers.get("completed", 0),
        "transfers",
        label="soak: transfers completed",
        total=transfers["total"],
        by_status=transfers,
    )
    run.figure("instances_checked", figures["instances checked at destinations"], "instances")
    run.figure("errors", figures["errors"], "", actions=figures["actions"])
    run.figure("emergency_alerts", figures["emergency alerts"], "", emergency_accesses=figures["emergency accesses"])
    run.figure("digests", figures["digests"], "", digest_days_spanned=figures["digest days spanned"])
    run.figure("processes_restarted", len(figures["processes restarted"]), "", restarted=figures["processes restarted"])
    peaks = figures["peak RSS MB (program with its children)"]
    largest = max(peaks, key=peaks.get)
    run.figure(
        "largest_peak_rss_mb",
        peaks[largest],
        "MB",
        label=f"soak: largest peak RSS of a demo program ({largest}, with its children)",
        programs=peaks,
        single_processes=figures["peak RSS MB (largest single process)"],
    )


def soak_run(args: argparse.Namespace, run: Run) -> int:
    rng = random.Random(args.seed)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="soak-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    database_url, database_name = throwaway_database(args, work)
    web_port, dicom_port, pacs_base = free_ports(1, rng), free_ports(1, rng), free_ports(4, rng)
    web = f"http://127.0.0.1:{web_port}"
    from zoneinfo import ZoneInfo

    local_now = datetime.now(ZoneInfo(DEMO_TIME_ZONE))
    digest_hour = (local_now.hour + 1) % 24  # a new digest day begins an hour from now at most
    scan_seconds = 30
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CELERY_BROKER_URL", "DATABASE_URL")}
    env.update(
        {
            "DEBUG": "1",
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "VAR_DIR": str(work),
            "DATABASE_URL": database_url,
            "DEMO_WEB_PORT": str(web_port),
            "SITE_URL": web,
            "DICOM_PORT": str(dicom_port),
            "DEMO_PACS_BASE_PORT": str(pacs_base),
            "EMAIL_URL": f"filemail://{work / 'mail'}".replace("://", ":///", 1),  # django-environ: 4 slashes
            "AUDIT_ALERT_SCAN_SECONDS": str(scan_seconds),
            "AUDIT_DIGEST_CHECK_SECONDS": "60",
            "AUDIT_DIGEST_HOUR": str(digest_hour),
            "GATEWAY_ECHO_SECONDS": "30",
            "REQUEST_ESCALATION_SCAN_SECONDS": "30",
            "LOG_FORMAT": "console",
        }
    )
    print(f"Soak run in {work}: {web}, DICOM {dicom_port}, PACS {pacs_base}-{pacs_base + 3}, {database_url}")
    for command in (["migrate", "--noinput"], ["seed_demo"]):
        subprocess.run([PYTHON, "manage.py", *command], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    demo = Demo(env, work)
    figures: dict[str, Any] = {}
    started_at = datetime.now(UTC)
    try:
        demo.start()
        demo.wait_ready(web)
        started = demo.processes()
        demo.start_sampling()
        from portal.demo import redis_url

        os.environ.update(env)
        os.environ["REDIS_URL"] = redis_url()  # VAR_DIR is set: the run's own Redis
        import django

        django.setup()
        soak = Soak(args, env, work, web)
        print(f"Load: {args.rate:g} actions a minute for {args.minutes:g} minutes (from {started_at:%H:%M:%S} UTC)")
        soak.run(args.minutes)
        print("Load stopped; waiting for the work in flight")
        drain(soak, args.drain_minutes)
        # The digest hour is the hour after the start: one digest at the start, one more if that hour passed
        # (a check runs every 60 s, so a boundary in the last 90 s may or may not have its digest yet).
        boundary = (local_now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)).astimezone(UTC)
        ended = datetime.now(UTC)
        days = (1 + (boundary < ended - timedelta(seconds=90)), 1 + (boundary < ended))
        figures = reckon(soak, demo, started, scan_seconds, days)
    finally:
        demo.stop()
        if not args.keep:
            drop_database(args, database_name)
    figures["minutes of load"] = args.minutes
    figures["actions a minute"] = args.rate
    figures["database"] = "postgresql" if database_name else "sqlite"
    figures["load average at the end"] = os.getloadavg()
    ok = all(figures["checks"].values())
    print(json.dumps(figures, indent=2, default=str))
    print("SOAK PASSED" if ok else "SOAK FAILED: " + ", ".join(k for k, v in figures["checks"].items() if not v))
    record_figures(run, figures)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"Kept {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
