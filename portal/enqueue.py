"""The one way the apps put a Celery task on the broker from inside a change.

A task takes IDs and reads its state from the database, so it must not start before the transaction
that wrote that state has committed (the worker would not find the row, or find it as it was), nor at
all if that transaction rolls back. Outside a transaction the task is sent at once.
"""

from __future__ import annotations

from typing import Any

from celery import Task
from django.db import transaction


def enqueue_after_commit(task: Task, *args: Any, queue: str | None = None) -> None:
    """Send `task(*args)` once the current transaction has committed. `queue` overrides the routing in
    settings (CELERY_TASK_ROUTES) for tasks that choose their queue per call (a transfer's priority)."""

    def send() -> None:
        if queue is None:
            task.delay(*args)
        else:
            task.apply_async(args, queue=queue)

    transaction.on_commit(send)
