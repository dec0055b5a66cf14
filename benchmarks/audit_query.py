"""How fast the IG console answers with millions of audit events on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal_bench .venv/bin/python benchmarks/audit_query.py \
        [--events 5000000] [--reseed] [--explain]

Creates and migrates the database if needed, seeds it server-side with generate_series (a region of
20 trusts, 500,000 patients, 2,000 staff, two years of events: sign-ins, searches, views, transfers,
exports, emergency approvals), then times the queries the console and the API run, warm, as a regional
administrator and as one trust's IG officer. The target is under 200 ms each.

The seeded rows carry placeholder hashes: this measures queries, not the chain (tests/audit does that).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("LOG_LEVEL", "WARNING")

from record import Run  # noqa: E402 - benchmarks/ is on the path as the script's own folder

TRUSTS = [f"R{n:02d}" for n in range(20)]
PATIENTS = 500_000
STAFF = 2_000
SPAN_DAYS = 730
TARGET_MS = 200.0
GIN_NAME = "audit_study_uids_gin"
GIN_INDEX = f"CREATE INDEX {GIN_NAME} ON audit_auditevent USING gin (study_uids jsonb_path_ops)"

# event_id, event_type, action, share of events (per mille)
MIX = [
    ("110114", "110122", "E", 250),
    ("110112", "", "E", 260),
    ("110103", "", "R", 280),
    ("110102", "IEP101", "E", 50),
    ("110104", "", "R", 50),
    ("110107", "", "C", 30),
    ("110106", "IEP131", "C", 30),
    ("110113", "110127", "E", 10),
    ("110101", "", "R", 20),
    ("110114", "110123", "E", 20),
]


def ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def seed(n: int) -> None:
    from django.db import connection

    from accounts.models import Membership, User
    from accounts.roles import Role
    from directory.models import Trust

    print(f"Seeding {n:,} events…", flush=True)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # The audit tables refuse TRUNCATE (migration 0005) unless a superuser switches triggers off.
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("TRUNCATE audit_auditevent, audit_chainhead, audit_auditalert RESTART IDENTITY CASCADE")
        cursor.execute("SET session_replication_role = origin")
    for code in TRUSTS:
        Trust.objects.get_or_create(ods_code=code, defaults={"name": f"Benchmark trust {code}"})
    officer, _ = User.objects.get_or_create(email="ig.r00@bench.invalid")
    Membership.objects.get_or_create(user=officer, trust=Trust.objects.get(ods_code="R00"), role=Role.IG_OFFICER)
    User.objects.get_or_create(email="admin@bench.invalid", defaults={"is_superuser": True})
    existing = User.objects.filter(email__endswith="@staff.bench.invalid").count()
    User.objects.bulk_create(
        [User(email=f"user{i}@staff.bench.invalid", password="!") for i in range(existing, STAFF)]  # noqa: S106
    )

    cases, upper = [], 0
    for event_id, event_type, action, share in MIX:
        upper += share
        cases.append((upper, event_id, event_type, action))

    def pick(column: int) -> str:
        return "CASE " + " ".join(f"WHEN k < {row[0]} THEN '{row[column]}'" for row in cases) + " END"

    from audit.models import AuditEvent

    # Bulk loading then indexing is several times faster than loading into eight indexes.
    with connection.cursor() as cursor:
        for name in [index.name for index in AuditEvent._meta.indexes] + [GIN_NAME]:
            cursor.execute(f'DROP INDEX IF EXISTS "{name}"')
        span_seconds = SPAN_DAYS * 86400
        # The generated ids are valid; skipping the per-row foreign key triggers saves minutes.
        cursor.execute("SET session_replication_role = replica")
        # One row per s; k picks the kind of event (per mille), p the patient, u the member of staff,
        # t and peer the trusts. Timestamps rise with seq, as they do under the chain lock.
        # Every value interpolated below is a number or a constant of this script.
        cursor.execute(
            f"""
            WITH staff AS (
                SELECT array_agg(id ORDER BY id) AS ids FROM accounts_user WHERE email LIKE '%@staff.bench.invalid'
            )
            INSERT INTO audit_auditevent (seq, timestamp, event_id, event_type, action, outcome, actor_type,
                actor_user_id, actor_label, actor_ref, trust, peer_trust, scope, nhs_number, patient_id,
                study_uids, client_ip, user_agent, request_id, reason, detail, prev_hash, hash)
            SELECT s, ts, ev, et, act, CASE WHEN s % 97 = 0 THEN 4 ELSE 0 END, 'user',
                (SELECT ids FROM staff)[u + 1], 'user' || u || '@staff.bench.invalid', '',
                CASE WHEN has_trust THEN t ELSE '' END,
                CASE WHEN ev IN ('110102', '110104', '110113') THEN peer ELSE '' END,
                CASE WHEN ev IN ('110102', '110104', '110113') THEN jsonb_build_array(t, peer)
                     ELSE jsonb_build_array(t) END,
                CASE WHEN has_patient THEN '9' || lpad(p::text, 9, '0') ELSE '' END,
                CASE WHEN has_patient THEN 'MRN' || p ELSE '' END,
                CASE WHEN has_patient THEN jsonb_build_array('1.2.826.0.1.3680043.10.' || p || '.' || (s % 3))
                     ELSE '[]'::jsonb END,
                ('10.' || (u % 250) || '.' || (s % 250) || '.1')::inet, 'BenchBrowser/1.0', '',
                CASE WHEN ev IN ('110102', '110113', '110106') THEN 'clinical reason ' || (s % 50) ELSE '' END,
                '{{}}'::jsonb, md5((s - 1)::text) || md5('x' || (s - 1)), md5(s::text) || md5('x' || s)
            FROM (
                SELECT s, k, ev, et, act, p, u, t, peer,
                       ev NOT IN ('110114', '110101') AS has_patient,
                       ev NOT IN ('110114', '110101') AS has_trust,
                       now() - make_interval(secs => {span_seconds})
                           + make_interval(secs => s * {span_seconds}.0 / {n}) AS ts
                FROM (
                    SELECT s, k, {pick(1)} AS ev, {pick(2)} AS et, {pick(3)} AS act,
                           (hashint % {PATIENTS}) AS p, (hashint % {STAFF}) AS u,
                           'R' || lpad(((hashint / 7) % 20)::text, 2, '0') AS t,
                           'R' || lpad(((hashint / 7 + 1 + s % 19) % 20)::text, 2, '0') AS peer
                    FROM (
                        SELECT s, (s * 7919) % 1000 AS k, hashtext(s::text)::bigint & 2147483647 AS hashint
                        FROM generate_series(1::bigint, {n}) AS s
                    ) raw
                ) picked
            ) rows
            """  # noqa: S608
        )
        cursor.execute("SET session_replication_role = origin")
        print(f"  rows inserted in {time.perf_counter() - started:.0f} s; rebuilding indexes…", flush=True)
        with connection.schema_editor() as editor:
            for index in AuditEvent._meta.indexes:
                editor.add_index(AuditEvent, index)
        cursor.execute(GIN_INDEX)  # as audit/migrations/0004 creates it
        cursor.execute("SET session_replication_role = replica")  # a head that did not grow by appending
        cursor.execute(
            "INSERT INTO audit_chainhead (id, seq, hash) VALUES (1, %s, md5(%s::text) || md5('x' || %s))", [n, n, n]
        )
        cursor.execute("SET session_replication_role = origin")
        cursor.execute("ANALYZE audit_auditevent")
    print(f"Seeded in {time.perf_counter() - started:.0f} s", flush=True)


def timed(label: str, run: Callable[[], object], repeat: int = 7) -> tuple[str, float, float]:
    run()  # warm
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    median = statistics.median(samples)
    verdict = "ok" if median < TARGET_MS else "SLOW"
    print(f"  {label:<62} median {median:7.1f} ms   max {max(samples):7.1f} ms   {verdict}")
    return label, median, max(samples)


def measure(explain: bool) -> list[tuple[str, float, float]]:
    from django.db import connection
    from django.utils import timezone

    from accounts.models import User
    from auditconsole import selectors
    from auditconsole.selectors import EventFilters

    admin = User.objects.get(email="admin@bench.invalid")
    officer = User.objects.get(email="ig.r00@bench.invalid")
    count = connection.cursor()
    count.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'audit_auditevent'")
    print(f"\naudit_auditevent holds about {count.fetchone()[0]:,} rows\n")

    # A patient with a typical history, and one a year ago.
    patient = "9" + str(123_457).rjust(9, "0")
    day = timezone.now() - timedelta(days=365)
    since, until = day.replace(hour=0, minute=0, second=0, microsecond=0), None
    until = since + timedelta(days=1)
    week_since = since - timedelta(days=6)

    def report(user):
        def run():
            events = selectors.patient_events(user, patient)
            page = selectors.page_of(events)
            summary = selectors.patient_summary(events)
            return len(page.events), summary.events

        return run

    def search(user, filters, pages=1):
        def run():
            cursor = None
            for _ in range(pages):
                page = selectors.page_of(selectors.search_events(user, filters), cursor=cursor)
                cursor = page.next_cursor
            return cursor

        return run

    one_day = EventFilters(since=since, until=until)
    one_week = EventFilters(since=week_since, until=until)
    results = [
        timed("patient access report (regional admin: page + summary)", report(admin)),
        timed("patient access report (IG officer of one trust)", report(officer)),
        timed("date-range search, one day a year ago (regional admin)", search(admin, one_day)),
        timed("date-range search, one week, 10th page (regional admin)", search(admin, one_week, pages=10)),
        timed("date-range search, one day a year ago (IG officer)", search(officer, one_day)),
        timed(
            "date range + event type 110103 (IG officer)",
            search(officer, EventFilters(since=since, until=until, event_ids=("110103",))),
        ),
        timed("newest events, no filter (IG officer)", search(officer, EventFilters())),
        timed("NHS number search (IG officer)", search(officer, EventFilters(nhs_number=patient))),
        timed(
            "Study Instance UID search (regional admin)",
            search(admin, EventFilters(study_uid=f"1.2.826.0.1.3680043.10.{123457}.1")),
        ),
        timed(
            "user activity, newest page (regional admin)",
            search(admin, EventFilters(user="user42@staff.bench.invalid")),
        ),
    ]
    if explain:
        with connection.cursor() as cursor:
            for label, queryset in (
                ("patient report", selectors.patient_events(officer, patient)[:51]),
                ("date range, IG officer", selectors.search_events(officer, one_day)[:51]),
            ):
                sql, params = queryset.query.sql_with_params()
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                print(f"\nEXPLAIN {label}:\n" + "\n".join(row[0] for row in cursor.fetchall()))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--reseed", action="store_true", help="seed again even if the table is already full")
    parser.add_argument("--explain", action="store_true", help="print the query plans too")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("Set DATABASE_URL to a PostgreSQL database (it is created and migrated if need be).")
    ensure_database(url)

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM audit_auditevent")
        present = cursor.fetchone()[0]
    if args.reseed or present < args.events:
        seed(args.events)
    with Run(__file__, arguments=vars(args)) as run:
        results = measure(args.explain)
        slow = [median for _, median, _ in results if median >= TARGET_MS]
        print(f"\n{len(results) - len(slow)}/{len(results)} queries under {TARGET_MS:.0f} ms")
        events = args.events if args.reseed or present < args.events else present
        for n, (label, median, most) in enumerate(results):
            run.figure(f"query_{n + 1}_ms", median, "ms", target=("<", TARGET_MS), query=label, max=most)
        label, median, most = next(r for r in results if r[0].startswith("patient access report (IG officer"))
        run.figure(
            "patient_report_ms",
            median,
            "ms",
            label=f"IG console, patient access report, {events / 1e6:g} million events, median",
            target=("<", TARGET_MS),
            max=most,
        )
        label, median, most = max(results, key=lambda r: r[1])
        run.figure(
            "slowest_query_ms",
            median,
            "ms",
            label=f"IG console, slowest of {len(results)} searches and reports, median",
            target=("<", TARGET_MS),
            query=label,
            max=most,
        )
    sys.exit(1 if slow else 0)


if __name__ == "__main__":
    main()
