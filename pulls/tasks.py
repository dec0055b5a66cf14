"""Celery beat: escalate requests nobody has answered in time."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="pulls.escalate_overdue")
def escalate_overdue() -> int:
    return services.request_escalate_overdue()
