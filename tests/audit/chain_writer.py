"""A separate process appending audit events, as a web worker or Celery worker would.

    python -m tests.audit.chain_writer COUNT START_AT   (DATABASE_URL names the database)

Waits until the START_AT epoch time so that every writer starts at once, then records COUNT events,
each in its own transaction.
"""

from __future__ import annotations

import os
import sys
import time

import django


def main() -> None:
    count, start_at = int(sys.argv[1]), float(sys.argv[2])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    django.setup()
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        # On a loaded test machine 200 queued writers can wait longer than the demo's 20 s; what is
        # tested is the chain they leave, not how long SQLite lets a writer wait.
        settings.DATABASES["default"]["OPTIONS"]["timeout"] = 120
    from audit.codes import Action, EventID
    from audit.context import system_actor
    from audit.services import record_event

    actor = system_actor(f"writer {os.getpid()}")
    time.sleep(max(0.0, start_at - time.time()))
    for i in range(count):
        record_event(event_id=EventID.QUERY, action=Action.EXECUTE, actor=actor, trust="RAA", detail={"i": i})


if __name__ == "__main__":
    main()
