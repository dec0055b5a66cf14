"""`celery -A portal worker` for tests: the same app, with the filesystem broker's folders the test chose."""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
import threading
import time

from portal.celery import app


def _die_with_parent(parent: int) -> None:
    """A test run that is itself killed must not leave workers behind: end this process group with it."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os.killpg(os.getpgid(0), signal.SIGKILL)


if __name__ == "__main__":
    # `kill -USR1 <pid>` writes every thread's stack to the worker log: what a stuck test needs to show.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    threading.Thread(target=_die_with_parent, args=(os.getppid(),), daemon=True).start()
    options = os.environ.get("TEST_BROKER_TRANSPORT_OPTIONS")
    if options:
        app.conf.broker_transport_options = json.loads(options)
    app.worker_main(["worker", *sys.argv[1:]])
