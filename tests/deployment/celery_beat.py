"""`celery -A portal beat` for the fault tests: the portal's own scheduler (with its heartbeat) and its own
interval entries, each at most every BEAT_TEST_MAX_INTERVAL seconds; of the crontab entries only the daily
digest, and that at every minute when BEAT_TEST_DIGEST_EVERY_MINUTE=1 (else none: an hourly check firing
in the middle of a test would only add noise)."""

from __future__ import annotations

import os
import sys
import threading

from celery.schedules import crontab

from portal.celery import app
from tests.transfers.celery_worker import _die_with_parent


def test_schedule() -> dict:
    most = float(os.environ.get("BEAT_TEST_MAX_INTERVAL", "3"))
    schedule = {}
    for name, entry in app.conf.beat_schedule.items():
        if isinstance(entry["schedule"], int | float):
            schedule[name] = {**entry, "schedule": min(float(entry["schedule"]), most)}
    if os.environ.get("BEAT_TEST_DIGEST_EVERY_MINUTE") == "1":
        schedule["audit-chain-digest"] = {**app.conf.beat_schedule["audit-chain-digest"], "schedule": crontab()}
    return schedule


if __name__ == "__main__":
    threading.Thread(target=_die_with_parent, args=(os.getppid(),), daemon=True).start()
    app.conf.beat_schedule = test_schedule()
    app.start(["beat", "--loglevel", "INFO", *sys.argv[1:]])
